package conn

// SetAcceptHook sets the function Accept calls when it is about to block
// (nil removes it). Tests only; not safe while a Listener is in use.
func SetAcceptHook(f func()) { testHookAccept = f }

// ReadBufLen returns the size of c's read-ahead buffer (0 before the first
// receive).
func ReadBufLen(c *Conn) int {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return len(c.rbuf)
}

// HasBuffered reports c.hasBuffered.
func HasBuffered(c *Conn) bool { return c.hasBuffered() }
