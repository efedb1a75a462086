//go:build !linux

package kmsdbotel_test

const rusageThread = 0 // RUSAGE_SELF: the process, where there is no per-thread figure
