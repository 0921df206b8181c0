package conn

// SetAcceptHook sets the function Accept calls when it is about to block
// (nil removes it). Tests only; not safe while a Listener is in use.
func SetAcceptHook(f func()) { testHookAccept = f }
