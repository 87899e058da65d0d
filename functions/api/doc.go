// Package api is what every function of the app shares: the error type and
// its mapping to HTTP status codes, RFC 9457 problem bodies that carry the
// trace id, JSON decoding with validation, and Env, the dependencies the
// handler hands each function when it is built.
package api
