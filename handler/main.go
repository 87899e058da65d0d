// Command handler is nbtrace's Azure Functions custom handler: the process
// the Functions host starts (host.json customHandler.description) and
// invokes over HTTP on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "handler:", err)
		os.Exit(1)
	}
}
