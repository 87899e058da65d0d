// Package funchost is a stand-in for the Azure Functions host, for local
// development and tests where the real host (Core Tools) cannot run. It
// reproduces what a custom handler sees of the host, as read from the
// host's source (Azure/azure-functions-host, Workers/Http) and tests:
//
//   - it reads host.json and */function.json from the app root, starts the
//     customHandler executable with FUNCTIONS_CUSTOMHANDLER_PORT,
//     FUNCTIONS_HTTPWORKER_PORT, FUNCTIONS_CUSTOMHANDLER_WORKER_ID and
//     FUNCTIONS_APP_ROOT_PATH, polls GET / every 25 ms until any HTTP answer
//     (initializationTimeout, 30 s by default), restarts the process when it
//     exits and gives up after 3 failures in 30 minutes (HttpWorkerProcess,
//     HttpFunctionInvocationDispatcher);
//   - it routes /{routePrefix}/{route} to functions case-insensitively, as
//     ASP.NET Core routing does, and answers 404 when no route or method
//     matches;
//   - payload mode (DefaultHttpWorkerService): POST /{FunctionName} with
//     Data (Url, Method, Query as an object, Headers as arrays, Params,
//     Identities, Body only when Content-Length > 0, base64 for octet-stream
//     and multipart) and Metadata (scalars JSON-encoded twice, query except
//     "code", route values, Query, Headers comma-joined, sys), sent chunked
//     as application/json; charset=utf-8; the answer must be 2xx with
//     Content-Type application/json or the invocation fails with 500; Logs
//     are logged; a named http output or $return (whose statusCode and
//     headers apply only with a body key) becomes the caller's answer;
//   - forwarding mode (enableForwardingHttpRequest): the original path and
//     headers (Host, X-Forwarded-*, traceparent included), the query rebuilt
//     from a dictionary (a=1&a=2 becomes a=1%2C2), the body only when
//     Content-Length > 0, User-Agent appended with Azure-Functions-Host/…;
//     the answer relayed verbatim, redirects not followed;
//   - tracing: a SERVER span for the caller's request (continuing the
//     caller's traceparent) and a CLIENT span for the call to the handler
//     whose context is sent as traceparent — except that, like .NET's
//     DiagnosticsHandler, an existing traceparent header is never
//     overwritten;
//   - function keys (authLevel function/admin) are checked only when keys
//     are configured; func start does not check them.
//
// StartCoreTools starts a staged folder as `func start --script-root` does,
// read from Azure Functions Core Tools' source (coretools.go, settings.go):
// settings only from the app root's local.settings.json (the folder itself,
// never the repository above it), its Values becoming environment variables
// unless the environment has them (empty and null ones set nothing),
// WEBSITE_HOSTNAME and AzureWebJobsScriptRoot set, FUNCTIONS_WORKER_RUNTIME
// required, no function key checked, and a handler that fails to start
// three times shutting the host down.
package funchost
