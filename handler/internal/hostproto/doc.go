// Package hostproto serves functions to the Azure Functions host over the
// custom-handler protocols, exactly as the host speaks them:
//
//   - payload mode (the default): the host calls POST /{FunctionName} with a
//     JSON body {"Data": …, "Metadata": …}; the handler answers 200 with
//     Content-Type application/json and {"Outputs", "Logs", "ReturnValue"},
//     the HTTP answer going into the function's http output binding (a
//     named one such as "res", or "$return");
//   - forwarding mode (host.json customHandler.enableForwardingHttpRequest,
//     or enableProxyingHttpRequest on newer hosts): the host sends the
//     caller's request at its original path, /api/…, and relays the plain
//     HTTP answer.
//
// Functions themselves are ordinary http.Handlers; this package turns each
// invocation into an *http.Request, starts the invocation's SERVER span
// from the trace context the host hands over, recovers panics, bounds
// bodies, and writes the answer in the protocol the host chose.
package hostproto
