package isolate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Command returns the command that runs exe with args in a new network namespace, in environment
// env (os.Environ style; ChildEnv is added). As root it needs only CLONE_NEWNET; otherwise it adds
// a user namespace mapping the caller to root inside (the equivalent of `unshare -Urn`), which
// works where unprivileged user namespaces are allowed.
func Command(exe string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Env = childEnv(env)
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	return cmd
}

// Explain turns a failure to start a Command into an error that says why and what to do.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	if os.Geteuid() == 0 {
		return fmt.Errorf("%s: clone(CLONE_NEWNET) as root failed: %w (a container without CAP_SYS_ADMIN?); run without --netns / isolate", unavailable, err)
	}
	return fmt.Errorf("%s: not root, and unprivileged user namespaces are not allowed on this host (%s): %w; "+
		"run as root, allow them (sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, "+
		"kernel.apparmor_restrict_unprivileged_userns=0) or run without --netns / isolate", unavailable, UserNamespaces(), err)
}

// UserNamespaces describes whether unprivileged user namespaces are allowed, from the sysctls that
// govern them.
func UserNamespaces() string {
	var why []string
	if v := readSys("user/max_user_namespaces"); v == "0" {
		why = append(why, "user.max_user_namespaces=0")
	}
	if v := readSys("kernel/unprivileged_userns_clone"); v == "0" {
		why = append(why, "kernel.unprivileged_userns_clone=0")
	}
	if v := readSys("kernel/apparmor_restrict_unprivileged_userns"); v == "1" {
		why = append(why, "kernel.apparmor_restrict_unprivileged_userns=1")
	}
	if len(why) == 0 {
		return "allowed"
	}
	return "not allowed: " + strings.Join(why, ", ")
}

func readSys(rel string) string {
	b, err := os.ReadFile(filepath.Join("/proc/sys", rel))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetUp prepares the namespace this process runs in: loopback up, then the sysctls. It refuses to
// run outside a namespace made by Command, so it can never change the host.
func SetUp(s Sysctls) error {
	if !InChild() {
		return errors.New("isolate: refusing to set up a namespace this process was not started in (it would change the host)")
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("isolate: bringing lo up: %w", err)
	}
	set := func(name, v string) error {
		if v == "" {
			return nil
		}
		if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv4", name), []byte(v), 0o644); err != nil {
			return fmt.Errorf("isolate: net.ipv4.%s=%s: %w", name, v, err)
		}
		return nil
	}
	itoa := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	return errors.Join(
		set("ip_local_port_range", strings.Replace(s.PortRange, "-", " ", 1)),
		set("tcp_tw_reuse", s.TWReuse),
		set("tcp_tw_reuse_delay", itoa(s.TWReuseDelayMS)),
		set("tcp_max_tw_buckets", itoa(s.MaxTWBuckets)),
	)
}

// loopbackUp sets IFF_UP on lo (a new namespace starts with it down), as `ip link set lo up` does.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
