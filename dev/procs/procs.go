// Package procs keeps the processes of the local stack and of its tests
// from outliving their parent: a killed go run ./dev or go test leaves
// nothing behind.
package procs

import (
	"os"
	"time"
)

// pollEvery is how often the parent is checked.
const pollEvery = 250 * time.Millisecond

// OnParentExit calls exit, once, when this process's parent has gone (it
// has been given to another parent). go run and go test start the program
// as their child and do not pass a SIGTERM or SIGKILL they get on to it, so
// without this the program (and the stack it started) would run on.
func OnParentExit(exit func()) {
	ppid := os.Getppid()
	if ppid <= 1 {
		return // started by init or a container's first process: no parent to watch
	}
	go func() {
		for range time.Tick(pollEvery) {
			if os.Getppid() != ppid {
				exit()
				return
			}
		}
	}()
}
