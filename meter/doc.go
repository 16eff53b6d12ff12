// Package meter reads what an OpenAI-style request may cost and what its response used.
//
// The request half (Inspect, Rewrite) runs once per request on a body the caller has read in
// full: it finds the model, whether the response streams and the output cap, and rewrites the
// body so the provider honours a cap and reports usage in streams. The response half (Parser)
// reads a response as it streams past, holding only a bounded amount, and keeps the last usage
// record it saw.
//
// The package does not import Caddy; it is plain Go, tested on its own.
package meter
