/**
 * Decorator: one span per permission check the decision asks for, as a child of the Check's
 * span, whether the decision cache answers it or SpiceDB does. A check that goes to SpiceDB is
 * sent from inside this span, so the CheckBulkPermissions call's own span (bulk-check-span.ts)
 * and SpiceDB's spans hang below it. Installed only when tracing is on (lifecycle/runtime.ts).
 * Attributes name the resource type, permission and subject type, never an object id.
 */
import { SpanKind } from '@opentelemetry/api';
import type { PermissionAnswer, PermissionChecker, PermissionQuery } from '../core/ports.js';
import { andThen } from '../core/awaitable.js';
import type { Awaitable } from '../core/awaitable.js';
import { inChildSpan } from '../observability/tracing.js';

export class TracingChecker implements PermissionChecker {
  constructor(private readonly inner: PermissionChecker) {}

  ready(): boolean {
    return this.inner.ready();
  }

  check(query: PermissionQuery): Awaitable<PermissionAnswer> {
    const attributes = {
      'jwtauth.spicedb.resource_type': query.resource.type,
      'jwtauth.spicedb.permission': query.permission,
      'jwtauth.spicedb.subject_type': query.subject.type,
      'jwtauth.spicedb.consistency': query.consistency.kind,
    };
    return inChildSpan('jwtauth.check_permission', SpanKind.INTERNAL, attributes, (span) =>
      andThen(this.inner.check(query), (answer) => {
        span.setAttributes(
          answer.ok
            ? { 'jwtauth.spicedb.result': answer.value.permissionship, 'jwtauth.spicedb.cached': answer.value.cached }
            : { 'jwtauth.spicedb.result': answer.reason, 'jwtauth.spicedb.cached': false },
        );
        return answer;
      }),
    );
  }
}
