/**
 * Headers the sidecar sets on requests it allows inbound. Apps may trust them only because every
 * incoming header with these names is removed before the verified values are set.
 */
export const IDENTITY_HEADERS = {
  subject: 'x-jwtauth-subject',
  subjectType: 'x-jwtauth-subject-type',
  issuer: 'x-jwtauth-issuer',
  actor: 'x-jwtauth-actor',
} as const;

export const IDENTITY_HEADER_NAMES: readonly string[] = Object.freeze(Object.values(IDENTITY_HEADERS));

/** The header a background job uses to name the user it acts for; never leaves the pod. */
export const DEFAULT_ON_BEHALF_OF_HEADER = 'x-jwtauth-on-behalf-of';
