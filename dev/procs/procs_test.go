package procs

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// The test binary plays a parent that starts a child and dies, and the
// child that must follow it.
func TestMain(m *testing.M) {
	switch os.Getenv("PROCS_TEST_ROLE") {
	case "parent":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PROCS_TEST_ROLE=child")
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			os.Exit(1)
		}
		var ready string
		_, _ = fmt.Fscan(out, &ready) // the child watches its parent now
		fmt.Printf("%d\n", cmd.Process.Pid)
		os.Exit(0) // dies without waiting
	case "child":
		OnParentExit(func() { os.Exit(0) })
		fmt.Println("watching")
		time.Sleep(time.Minute)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestOnParentExit: a child whose parent dies exits within a second.
func TestOnParentExit(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PROCS_TEST_ROLE=parent")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscanf(string(out), "%d", &pid); err != nil {
		t.Fatalf("parent printed %q", out)
	}
	p, _ := os.FindProcess(pid)
	defer p.Kill()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return // gone (reaped by init once it exited)
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); len(b) > 0 && containsZombie(string(b)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d outlived its parent", pid)
		}
	}
}

func containsZombie(stat string) bool {
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return len(stat) > i+2 && stat[i+2] == 'Z'
		}
	}
	return false
}
