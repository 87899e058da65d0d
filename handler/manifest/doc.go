// Package manifest reads an Azure Functions app the way the Functions host
// does: host.json at the app root and one folder per function holding its
// function.json. It keeps only what a custom handler serving HTTP-triggered
// functions needs (trigger name, methods, route, auth level, HTTP output
// binding) and decides, per function, which of the host's two custom-handler
// protocols the host will use for it.
//
// Everything that the handler cannot serve is reported at load time, so that
// a bad deployment stops the handler at start-up with one message instead of
// failing requests later.
package manifest
