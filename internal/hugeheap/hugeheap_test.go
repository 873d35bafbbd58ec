package hugeheap

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vmaFlags returns the VmFlags of the mapping of this process that holds
// addr, from /proc/self/smaps.
func vmaFlags(addr uintptr) ([]string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if r, _, _ := strings.Cut(l, " "); !strings.HasSuffix(r, ":") {
			if lo, hi, ok := strings.Cut(r, "-"); ok {
				a, err1 := strconv.ParseUint(lo, 16, 64)
				b, err2 := strconv.ParseUint(hi, 16, 64)
				in = err1 == nil && err2 == nil && uint64(addr) >= a && uint64(addr) < b
				continue
			}
		}
		if in && strings.HasPrefix(l, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(l, "VmFlags:")), nil
		}
	}
	return nil, fmt.Errorf("no mapping of this process holds %#x", addr)
}

// childEnv runs this test binary's adviseAndAllocate in a process of its
// own: as in sitectl, Advise runs while the heap is small, not after other
// tests have left free pages in it.
const childEnv = "SITECTL_HUGEHEAP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := adviseAndAllocate(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// adviseAndAllocate advises 64 MiB, then allocates what a listing does
// (many blocks of some KiB, 32 MiB in all), and checks that the region is
// advised for huge pages ("hg" in VmFlags) and that most of the blocks
// are in it.
func adviseAndAllocate() error {
	lo, hi, err := Advise(64 << 20)
	if err != nil {
		return fmt.Errorf("Advise: %w", err)
	}
	if hi-lo < 32<<20 {
		return fmt.Errorf("advised %#x-%#x: less than 32 MiB of 64", lo, hi)
	}
	fl, err := vmaFlags(lo)
	if err != nil {
		return err
	}
	if !strings.Contains(" "+strings.Join(fl, " ")+" ", " hg ") {
		return fmt.Errorf("the advised region %#x-%#x has VmFlags %v, without hg", lo, hi, fl)
	}
	in, n := 0, 2000
	keep := make([][]byte, n)
	for i := range keep {
		keep[i] = make([]byte, 16<<10)
		if p := uintptr(unsafe.Pointer(&keep[i][0])); p >= lo && p < hi {
			in++
		}
	}
	runtime.KeepAlive(keep)
	if in < n*3/4 {
		return fmt.Errorf("%d of %d blocks allocated after Advise are in the advised region %#x-%#x", in, n, lo, hi)
	}
	return nil
}

func TestAllocationsAfterAdviseLandInAHugePageRegion(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// Under a huge page there is nothing to advise.
func TestAdviseOfLessThanAHugePage(t *testing.T) {
	if lo, hi, err := Advise(1 << 20); err != nil || lo != hi {
		t.Errorf("Advise(1 MiB) = %#x, %#x, %v; want an empty region", lo, hi, err)
	}
}
