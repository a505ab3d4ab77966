package e2e

import "syscall"

// childProcAttr makes the kernel kill a daemon the test started if the test
// process dies first (a panic or a -timeout), so no edgegate outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
