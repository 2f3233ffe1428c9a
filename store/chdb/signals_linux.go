package chdb

import (
	"syscall"
	"unsafe"
)

// protectedSignals are the ones chDB resets (chdb_reset_signal_handlers:
// ABRT SEGV ILL BUS SYS FPE TSTP TRAP) plus URG, which Go uses for preemption.
var protectedSignals = []syscall.Signal{
	syscall.SIGABRT, syscall.SIGSEGV, syscall.SIGILL, syscall.SIGBUS,
	syscall.SIGSYS, syscall.SIGFPE, syscall.SIGTSTP, syscall.SIGTRAP, syscall.SIGURG,
}

// kernelSigaction is big enough for the kernel's struct sigaction on every
// Linux architecture (32 bytes on amd64/arm64); we only copy it back and forth.
type kernelSigaction [64]byte

func rtSigaction(sig syscall.Signal, act, old *kernelSigaction) {
	// sigsetsize 8: the kernel's sigset_t on 64-bit Linux.
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
}

// withGoSignals runs fn, then puts back exactly the handlers the protected
// signals had before (the raw kernel structs, so Go's flags and restorer
// survive), whatever fn did to them.
func withGoSignals(fn func()) {
	saved := make([]kernelSigaction, len(protectedSignals))
	for i, sig := range protectedSignals {
		rtSigaction(sig, nil, &saved[i])
	}
	defer func() {
		for i, sig := range protectedSignals {
			rtSigaction(sig, &saved[i], nil)
		}
	}()
	fn()
}
