// Command minimal is the smallest custom handler the Functions host can
// run in payload mode: it answers the host's readiness poll (GET /) and
// each invocation (POST /{function}) by decoding the payload and returning
// an HTTP output. The benchmark compares nbtrace's cold start with it.
package main

import (
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			return // ready
		}
		var payload struct {
			Data     map[string]json.RawMessage
			Metadata map[string]json.RawMessage
		}
		if err := json.NewDecoder(r.Body).Decode(&payload); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"Outputs": map[string]any{"res": map[string]any{"statusCode": 200, "body": "ok"}},
			"Logs":    []string{},
		})
	})))
}
