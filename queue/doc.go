// Package queue is a FIFO queue of items shared by any number of
// processes: Python's multiprocessing.Queue for Go programs, with no lock
// on the data path.
//
// The parent creates the queue and hands it to its children; each child
// opens it by name:
//
//	jobs, err := queue.New[Job](0)          // 0: unbounded
//	cmd := exec.Command(worker)
//	jobs.Share(cmd, "jobs")                 // before cmd.Start
//
//	jobs, err := queue.Inherit[Job]("jobs") // in the child
//	job, err := jobs.Get(ctx)
//
// Items are encoded with msgpack (github.com/vmihailenco/msgpack/v5) in the
// process that puts them, so an item that cannot be encoded fails at
// [Queue.Put], in the caller, not later in a background goroutine.
//
// # Semantics
//
// Every item is received exactly once, whatever the number of producer and
// consumer processes; with one consumer, each producer's items arrive in
// the order it put them. [Queue.Get] and [Queue.Put] on a full bounded
// queue wait until their ctx ends (they then return ctx.Err() and leave the
// queue unchanged) or until [Queue.Close] (ErrClosed).
//
// # Buffering, Flush and Close
//
// An unbounded Put never waits: when the queue's socket is full it keeps
// the encoded item in the process, and a goroutine sends such items in
// order as room appears, several per packet. A process that exits with
// items still buffered loses them, so call [Queue.Close] (or
// [Queue.Flush], which a deadline bounds) before exiting; the queue also
// registers its flush with mproc's exit hooks, which process.Main runs when
// a child's main function returns. Python's Queue has the same feeder
// thread and the same rule (close and join_thread).
//
// # Batches
//
// Several items per packet are what make the queue several times faster
// than one packet per item: a consumer then spends one system call on a
// whole packet. The Get that receives such a packet returns its first item
// and the process keeps the rest for its next Gets; Close gives back to the
// queue the items no Get took. A packet's items all go to one consumer, so
// a producer sizes packets by how fast the consumers drain the queue: about
// 100 µs of their work, many items when they are quick to handle, one when
// they are slow, so that idle consumers are not left waiting while another
// one holds items.
//
// # Size
//
// For a bounded queue (maxsize > 0), [Queue.Qsize], [Queue.Full] and
// [Queue.Empty] are exact when no call is under way in any process: each
// item holds one of maxsize slots, a byte in a token pipe, from the Put that
// takes it to the Get that returns it, wherever the item is meanwhile. For
// an unbounded queue no count is kept, since keeping one would cost a
// system call per item in every process: Qsize estimates the items in the
// socket from the bytes waiting there and adds the items this process
// buffers; it is exact when the waiting items encode to the same size.
//
// # What a crash may cost
//
// The queue is one SOCK_SEQPACKET socketpair: a packet is sent with one
// system call and received whole with one, so a process killed with
// SIGKILL at any moment leaves no partial item and holds no lock. It loses
// only what it held: the items it had buffered and not yet sent, the items
// it had received and not yet returned from Get (at most one packet), an
// item larger than a packet that it was sending or receiving. Every other
// process goes on, sees no corrupted item and does not hang. In a bounded
// queue, the slots of the items a killed process held are lost with them:
// the queue's capacity shrinks by that many: for a consumer, the items of
// the packet it held; for a producer, the items of its buffer, at most 1024
// (a bounded queue's Put waits while its process buffers that many), and a large item it was sending. (Python's Queue, by
// contrast, can be left locked or corrupted for every process by one
// killed in the middle of a get or a put.)
//
// A producer stopped (SIGSTOP) in the middle of a large item costs a
// consumer's Get its ctx; the next Get of that consumer goes on with the
// item. A consumer at its descriptor limit cannot receive a large item's
// pipe: that item is lost, its Get returns an error that errors.Is
// syscall.EMFILE, and its slot comes back.
//
// # Hostile peers
//
// Any process holding the queue's descriptors can write anything into its
// socket. What is not an item a queue writes (random bytes, empty frames,
// a value followed by other bytes, arrays nested deeper than 10,000
// levels, a large item whose body ends early or never comes) is reported
// once, by the Get that meets it ([ErrCorrupt], [ErrTooDeep]), and changes
// no accounting: no slot comes back for it. Genuine items go on.
//
// # Item types
//
// A queue records the msgpack shape of its item type, and [Inherit] with a
// type of another shape fails with [ErrWrongKind], naming both types. Two
// types have the same shape when they encode the same fields (by their
// msgpack names, in any order; in order for an as_array struct) with
// fields, elements, keys and values of the same shapes, whatever the
// types' names and the widths of their integers: all integers are one
// shape, all floats one, strings one, byte slices one; a type with its own
// msgpack encoding (time.Time, a msgpack.CustomEncoder) is only itself.
// A queue of any, or of msgpack.RawMessage, on either side matches every
// type.
//
// # Limits
//
//   - Linux only.
//   - An item is at most [MaxItemSize] (1 GiB) encoded. Items up to 64 KiB
//     encoded travel in the socket; larger ones each get a pipe of their
//     own, passed along with a small packet, through which the item
//     streams (up to about 1 MiB of it waiting in the kernel, the rest
//     written as the receiver reads).
//   - A bounded queue's maxsize is limited by the capacity of a pipe:
//     about one million with the default fs.pipe-max-size of 1 MiB. New
//     refuses more with [ErrMaxsize].
//   - A process gives each queue it opens 2 descriptors (4 when bounded).
package queue
