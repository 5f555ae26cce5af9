package relay

import (
	"testing"
	"time"
)

// TestPipesTrimmedWhenIdle: pooled pipes are kept while transfers come and
// closed once none has been taken for pipeIdle, so a quiet relay holds no
// pipe's file descriptors.
func TestPipesTrimmedWhenIdle(t *testing.T) {
	p, err := getPipe()
	if err != nil {
		t.Fatal(err)
	}
	putPipe(p)
	if len(pipes) == 0 {
		t.Fatal("an empty pipe given back was not pooled")
	}
	if wait := trimIdlePipes(time.Now()); wait <= 0 || len(pipes) == 0 {
		t.Fatalf("a pipe just used was trimmed (wait %v, %d pooled)", wait, len(pipes))
	}
	if wait := trimIdlePipes(time.Now().Add(pipeIdle)); wait != 0 || len(pipes) != 0 {
		t.Fatalf("after pipeIdle unused: wait %v, %d pipes still pooled; want none", wait, len(pipes))
	}
}
