/**
 * PermissionQuery ⇄ authzed.api.v1 messages. One place builds the request, for the gRPC client
 * and the embedded worker alike, and one place reads the answer.
 */
import { v1 } from '@authzed/authzed-node';
import type { Consistency, ObjectRef, PermissionAnswer, PermissionQuery } from '../core/ports.js';
import { failure, success } from '../core/result.js';

type JsonObject = Parameters<typeof v1.createStructFromObject>[0];

export function consistencyMessage(consistency: Consistency): v1.Consistency {
  switch (consistency.kind) {
    case 'minimize_latency':
      return v1.Consistency.create({ requirement: { oneofKind: 'minimizeLatency', minimizeLatency: true } });
    case 'fully_consistent':
      return v1.Consistency.create({ requirement: { oneofKind: 'fullyConsistent', fullyConsistent: true } });
    case 'at_least_as_fresh':
      return v1.Consistency.create({
        requirement: { oneofKind: 'atLeastAsFresh', atLeastAsFresh: v1.ZedToken.create({ token: consistency.zedToken }) },
      });
  }
}

/** `type:id` as an authzed ObjectReference; shared by checks and the relationships we load. */
export function objectReference(ref: ObjectRef): v1.ObjectReference {
  return v1.ObjectReference.create({ objectType: ref.type, objectId: ref.id });
}

/** `type:id` or `type:id#relation` as an authzed SubjectReference. */
export function subjectReference(ref: ObjectRef & { readonly relation?: string }): v1.SubjectReference {
  return v1.SubjectReference.create({ object: objectReference(ref), optionalRelation: ref.relation ?? '' });
}

/** One item of a CheckBulkPermissions call (the call carries the consistency). */
export function toBulkItem(query: PermissionQuery): v1.CheckBulkPermissionsRequestItem {
  return v1.CheckBulkPermissionsRequestItem.create({
    resource: objectReference(query.resource),
    permission: query.permission,
    subject: subjectReference(query.subject),
    ...(query.context ? { context: v1.createStructFromObject(query.context as JsonObject) } : {}),
  });
}

export function toCheckPermissionRequest(query: PermissionQuery): v1.CheckPermissionRequest {
  return v1.CheckPermissionRequest.create({
    resource: objectReference(query.resource),
    permission: query.permission,
    subject: subjectReference(query.subject),
    consistency: consistencyMessage(query.consistency),
    // authzed-node's own helper: a google-protobuf Struct would be sent empty.
    ...(query.context ? { context: v1.createStructFromObject(query.context as JsonObject) } : {}),
  });
}

const ALLOWED: PermissionAnswer = Object.freeze(success(Object.freeze({ permissionship: 'allowed', cached: false })));
const DENIED: PermissionAnswer = Object.freeze(success(Object.freeze({ permissionship: 'denied', cached: false })));
const CONDITIONAL: PermissionAnswer = Object.freeze(success(Object.freeze({ permissionship: 'conditional', cached: false })));

export function answerFor(permissionship: v1.CheckPermissionResponse_Permissionship): PermissionAnswer {
  switch (permissionship) {
    case v1.CheckPermissionResponse_Permissionship.HAS_PERMISSION:
      return ALLOWED;
    case v1.CheckPermissionResponse_Permissionship.CONDITIONAL_PERMISSION:
      return CONDITIONAL;
    case v1.CheckPermissionResponse_Permissionship.NO_PERMISSION:
      return DENIED;
    default:
      return failure('permission_backend_unavailable', 'SpiceDB answered PERMISSIONSHIP_UNSPECIFIED');
  }
}
