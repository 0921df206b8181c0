// Package joinable is Python's multiprocessing.JoinableQueue for Go
// programs made of several processes: a queue.Queue whose items are counted
// as unfinished tasks until some process calls [Queue.TaskDone] for each,
// and [Queue.Join], which waits until none is left.
//
//	jq, _ := joinable.New[Job](0)          // in the parent
//	jq.Share(cmd, "jobs")                  // before cmd.Start
//	jq.Put(ctx, job) ...
//	jq.Join(ctx)                           // every job processed
//
//	jq, _ := joinable.Inherit[Job]("jobs") // in a worker
//	for {
//		job, err := jq.Get(ctx)
//		...
//		jq.TaskDone()
//	}
//
// Put, TryPut, Get, TryGet, Qsize, Empty, Full, Flush and Close behave as
// in package queue: any number of producer and consumer processes, every
// item delivered once, no lock on the data path.
//
// # Semantics
//
// An item counts as unfinished from the moment any process can get it.
// An item that Put sends at once (the usual case) is counted before Put
// returns. An item that Put leaves in this process's buffer, because the
// queue's socket was full, is counted when it leaves the buffer, which
// the process's flusher does as soon as consumers make room. Join in the
// process that put the items flushes them first, so it always waits for
// them; Join in another process waits for the items that have left their
// buffers. To have another process's Join wait for your items, call
// [Queue.Flush] (or Close) before telling it you are done putting.
//
// TaskDone marks one task done. Called when no task is unfinished it
// returns [ErrTooManyTaskDone] and changes nothing.
//
// Join returns once the count of unfinished tasks has been zero at some
// moment since it was called. It honours ctx, and Close wakes it.
//
// # Cost: batched TaskDone
//
// The count lives in a pipe shared by every process (internal/counter):
// one shared update is two syscalls. Producers update it once per packet
// (one packet carries several items when a backlog builds up). A TaskDone
// for an item this process got itself only lowers a tally of this process;
// the tally reaches the shared count when this process is about to wait in
// Get, when it reaches 1024, about a millisecond after it leaves zero, and
// at Close or exit. So Join returns within about a millisecond of the last
// TaskDone. A TaskDone with no such item pending (the item was got by
// another process, or this is an extra call) takes the shared, checked path
// at once: that is where ErrTooManyTaskDone comes from.
//
// A consequence: when process A has got an item and marked it done in its
// tally, and process B calls an extra TaskDone before A's tally reaches
// the shared count, B's call takes A's task and succeeds, and the error
// surfaces in A instead: its next Join or Close returns ErrTooManyTaskDone.
// Within one process an extra TaskDone is always refused in its caller.
//
// # What a crash costs
//
// The queue's data path has package queue's guarantee: a process killed
// at any moment loses at most the items it had got and the frames it was
// writing; the others go on and see no corrupted item. For the count of
// unfinished tasks, a killed process leaves as unfinished:
//   - the items it got and had not marked done (as in Python), and
//   - the items it marked done in the last millisecond or so, its tally
//     not yet flushed, and
//   - the large item (over 64 KiB encoded) it was sending: its body ends
//     early and its consumer drops it, but gives nothing back, since a
//     forged stub from a process that counted nothing looks the same.
//
// Items still in a killed producer's buffer were never counted. Join then
// waits until its ctx ends. A process killed in the two syscalls of a
// shared update takes the count with it (as does one stopped while it
// holds it, until it continues): every later Put, TryPut, Flush and Join
// of every process returns when its ctx ends (TryPut, which has none,
// after 1 s; TaskDone, which has none, on Close), Qsize and Empty answer
// at once, Close wakes a Put or TaskDone waiting for the count at once and
// gives up on the count after 10 s. No lock of this process is held while
// it waits for another process. Pipes cannot tell who holds them, so a
// lost count is not detected. Items already in the queue stay readable by
// Get.
//
// A consumer at its descriptor limit cannot receive a large item's pipe:
// that item is lost, its Get's error matches syscall.EMFILE, and it is
// taken off the count, so Join does not wait for it.
//
// # Limits
//
// Linux only. The count is an int64. Sizes and maxsize limits are those of
// package queue. A child that inherited a queue flushes it at exit only
// through the atexit registry (process.Main runs it); a program that exits
// another way should call Close.
package joinable
