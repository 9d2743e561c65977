/**
 * The Node flags the sidecar ships with (Dockerfile ENTRYPOINT, `npm start`; test/unit/examples
 * holds the three together). Every Node authorizer in the bench runs with them, the Node floor
 * too, so each figure is the one a deployment gets.
 */
export const SHIPPED_NODE_ARGS: readonly string[] = ['--single-threaded-gc'];
