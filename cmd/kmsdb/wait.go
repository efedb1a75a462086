package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// waitNoticeAfter is how long a command waits before saying what it waits for.
var waitNoticeAfter = time.Second

// noticeWait prints one line on w ("kmsdb get: waiting for ...") if the wait lasts longer than waitNoticeAfter. The
// returned stop ends the wait: after it returns, nothing more is written. One plain line, never a spinner, so logs
// and pipes stay readable.
func noticeWait(w io.Writer, cmd, format string, a ...any) (stop func()) {
	var mu sync.Mutex
	stopped := false
	msg := fmt.Sprintf("kmsdb %s: waiting for %s ...\n", cmd, fmt.Sprintf(format, a...))
	t := time.AfterFunc(waitNoticeAfter, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_, _ = io.WriteString(w, msg)
		}
	})
	return func() {
		t.Stop()
		mu.Lock()
		stopped = true
		mu.Unlock()
	}
}
