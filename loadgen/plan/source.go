package plan

import (
	"fmt"
	"net/netip"
)

// MaxSourceAddresses caps the source-address pool after CIDR prefixes are expanded. The port
// observatory keeps a 65536-bit map per source address, and 1024 addresses already give over
// 28 million concurrent connections to one destination.
const MaxSourceAddresses = 1024

// SourceAddrs expands source.addresses (addresses and CIDR prefixes) into the pool, in order,
// without duplicates. IPv4 prefixes shorter than /31 leave out their network and broadcast
// addresses, which cannot be a TCP source.
func (s Source) SourceAddrs() ([]netip.Addr, error) {
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	add := func(a netip.Addr) error {
		a = a.Unmap()
		if seen[a] {
			return nil
		}
		if len(out) >= MaxSourceAddresses {
			return fmt.Errorf("more than %d source addresses; want a smaller pool, like 127.0.0.0/22", MaxSourceAddresses)
		}
		seen[a] = true
		out = append(out, a)
		return nil
	}
	for _, txt := range s.Addresses {
		if a, err := netip.ParseAddr(txt); err == nil {
			if a.Zone() != "" {
				return nil, fmt.Errorf("%q: zones are not supported in source addresses", txt)
			}
			if err := add(a); err != nil {
				return nil, err
			}
			continue
		}
		pfx, err := netip.ParsePrefix(txt)
		if err != nil {
			return nil, fmt.Errorf("want an IP address or a CIDR prefix, got %q", txt)
		}
		pfx = pfx.Masked()
		hostBits := pfx.Addr().BitLen() - pfx.Bits()
		if hostBits > 30 || (hostBits > 0 && 1<<hostBits > MaxSourceAddresses+2) {
			return nil, fmt.Errorf("%s holds %s addresses; at most %d source addresses, like %s",
				txt, pow2(hostBits), MaxSourceAddresses, shrink(pfx))
		}
		first, last := pfx.Addr(), lastAddr(pfx)
		if pfx.Addr().Is4() && hostBits >= 2 {
			first, last = first.Next(), last.Prev()
		}
		for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
			if err := add(a); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func pow2(bits int) string {
	if bits >= 63 {
		return fmt.Sprintf("2^%d", bits)
	}
	return fmt.Sprintf("%d", uint64(1)<<bits)
}

// shrink suggests the prefix of the same start that fits the cap.
func shrink(p netip.Prefix) string {
	bits := p.Addr().BitLen() - 10 // 1024 addresses
	return netip.PrefixFrom(p.Addr(), bits).Masked().String()
}
