package prober

import "syscall"

// setDontFragment sets the DF bit on every IPv4 packet the socket sends and
// makes sends larger than the path MTU fail instead of being fragmented.
func setDontFragment(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DO)
	}); err != nil {
		return err
	}
	return serr
}
