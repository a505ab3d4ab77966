package pebbletest

import "syscall"

// procAttr makes the kernel kill Pebble if the test process dies first (a
// panic or a -timeout), so no Pebble outlives the test that started it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
