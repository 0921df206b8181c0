package mq

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw socket calls, without the allocations of unix.Sendmsg and
// unix.Recvmsg. They never block (MSG_DONTWAIT): callers wait in the
// runtime poller. So they are made with RawSyscall, which spares the
// scheduler's bookkeeping around a system call that may block; that
// bookkeeping (and the sysmon wake-ups it brings) cost as much as the
// kernel's work for a small item.

// sendPacket sends p as one packet on the socket sfd, with the descriptor
// rights attached (SCM_RIGHTS) when rights >= 0.
func sendPacket(sfd int, p []byte, rights int) error {
	if rights >= 0 || len(p) == 0 {
		return sendGather(sfd, nil, p, rights)
	}
	// send(2) spares the kernel the message header and iovec of sendmsg.
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(sfd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// sendGather sends hdr followed by p as one packet.
func sendGather(sfd int, hdr, p []byte, rights int) error {
	var iov [2]unix.Iovec
	k := 0
	for _, b := range [2][]byte{hdr, p} {
		if len(b) > 0 {
			iov[k].Base = &b[0]
			iov[k].SetLen(len(b))
			k++
		}
	}
	var msg unix.Msghdr
	if k > 0 {
		msg.Iov = &iov[0]
		msg.SetIovlen(k)
	}
	var oob []byte
	if rights >= 0 {
		oob = unix.UnixRights(rights)
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	for {
		_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(sfd), uintptr(unsafe.Pointer(&msg)),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// recvPacket receives one packet from the socket sfd into buf, and its
// ancillary data into oob. Descriptors arrive close-on-exec.
func recvPacket(sfd int, buf, oob []byte, flags int) (n, oobn, rflags int, err error) {
	var iov unix.Iovec
	if len(buf) > 0 {
		iov.Base = &buf[0]
	}
	iov.SetLen(len(buf))
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	for {
		r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(sfd), uintptr(unsafe.Pointer(&msg)),
			uintptr(flags|unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC))
		switch e {
		case 0:
			return int(r), int(msg.Controllen), int(msg.Flags), nil
		case unix.EINTR:
			continue
		}
		return 0, 0, 0, e
	}
}

// rightsOf returns the descriptors carried by the ancillary data oob.
func rightsOf(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, d := range fds {
		unix.Close(d)
	}
}

// recvPackets receives up to len(hdrs) packets from the socket sfd with
// one recvmmsg, without waiting; descriptors arrive close-on-exec.
func recvPackets(sfd int, hdrs []unix.Mmsghdr) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(sfd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)),
			unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}
