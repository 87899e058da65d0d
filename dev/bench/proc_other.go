//go:build !unix

package bench

import "os"

// terminate stops the handler; without signals it is killed.
func terminate(p *os.Process) error { return p.Kill() }
