// Package validate is the validate function: it checks a request's body
// against its schema, then asks service A (freshness) and service B (quota)
// concurrently over HTTP, and answers which checks passed, how long each
// took, and the trace id.
package validate
