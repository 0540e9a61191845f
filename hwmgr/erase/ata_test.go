package erase

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/scsi"
)

// ataModel is a SATA drive's security feature set as ACS-3 describes it
// (no SATA drive with it exists on the build host or in QEMU): its state
// machine, the commands it was sent, and ERASE UNIT zeroing the backing
// loop device.
type ataModel struct {
	path                           string
	supported, enabled, frozen     bool
	password                       scsi.Password
	prepared                       bool
	eraseKeepsPassword, abortErase bool
	log                            []string
}

func (a *ataModel) Path() string { return a.path }
func (a *ataModel) Close() error { return nil }

func (a *ataModel) ATAIdentifyDevice(context.Context) (scsi.Identify, error) {
	a.log = append(a.log, "identify")
	return scsi.Identify{Model: "MODEL ATA", SecuritySupported: a.supported, EraseMinutes: 2,
		Security: scsi.SecurityStatus{Supported: a.supported, Enabled: a.enabled, Frozen: a.frozen}}, nil
}

var errAborted = errors.New("ABORTED COMMAND")

func (a *ataModel) ATASecuritySetPassword(_ context.Context, pw scsi.Password) error {
	a.log = append(a.log, "set-password")
	if !a.supported || a.frozen || a.enabled {
		return errAborted
	}
	a.enabled, a.password = true, pw
	return nil
}

func (a *ataModel) ATASecurityErasePrepare(context.Context) error {
	a.log = append(a.log, "erase-prepare")
	a.prepared = true
	return nil
}

func (a *ataModel) ATASecurityEraseUnit(_ context.Context, pw scsi.Password, enhanced bool, timeout time.Duration) error {
	a.log = append(a.log, "erase-unit")
	ok := a.prepared && a.enabled && pw == a.password && !a.abortErase && timeout >= 2*time.Hour
	a.prepared = false
	if !ok {
		return errAborted
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	zero := make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero, off); err != nil {
			break // the end of the device
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if !a.eraseKeepsPassword {
		a.enabled = false
	}
	return nil
}

func (a *ataModel) ATASecurityDisablePassword(_ context.Context, pw scsi.Password) error {
	a.log = append(a.log, "disable-password")
	if pw != a.password {
		return errAborted
	}
	a.enabled = false
	return nil
}

func (a *ataModel) method() ATASecurityErase {
	return ATASecurityErase{open: func(string) (ataDrive, error) { return a, nil }}
}

// TestATASecurityEraseStateMachine runs Run with ATASecurityErase on a loop
// device whose security feature set is modelled: the hdparm sequence on a
// good drive; a frozen drive refused before any command that changes it
// (and the overwrite used instead); a drive that keeps its password after
// ERASE UNIT, and one that aborts ERASE UNIT, both left without the
// temporary password and failed.
func TestATASecurityEraseStateMachine(t *testing.T) {
	ctx := context.Background()
	path, dev := openLoop(t, 32<<20)
	head := readHead(t, path)

	good := &ataModel{path: path, supported: true}
	rep, err := Run(ctx, dev, target.Drive{Path: path}, Config{Method: good.method(), Seed: 1})
	if err != nil || !rep.Pass || rep.Method != "ata-security-erase" || rep.MarkersFound != 0 {
		t.Fatalf("good drive: %+v %v", rep, err)
	}
	if got, want := strings.Join(good.log, " "), "identify identify set-password erase-prepare erase-unit identify"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	if good.enabled {
		t.Error("security left enabled")
	}
	checkErased(t, path, head, []byte{0})

	frozen := &ataModel{path: path, supported: true, frozen: true}
	rep, err = Run(ctx, dev, target.Drive{Path: path}, Config{Method: frozen.method(), Fallback: []Method{Overwrite{}}, Seed: 2})
	if err != nil || !rep.Pass || rep.Method != "overwrite-zeros" || rep.Attempts[0].Outcome != OutcomeUnsupported ||
		!strings.Contains(rep.Attempts[0].Detail, "frozen") {
		t.Fatalf("frozen drive: %+v %v", rep, err)
	}
	if got := strings.Join(frozen.log, " "); got != "identify" {
		t.Errorf("frozen drive was sent %q", got)
	}
	if _, err := Run(ctx, dev, target.Drive{Path: path}, Config{Method: frozen.method(), Seed: 2}); !errors.Is(err, ErrUnsupported) || !errors.Is(err, scsi.ErrSecurityFrozen) {
		t.Errorf("frozen drive without fallback: %v", err)
	}

	for _, bad := range []*ataModel{
		{path: path, supported: true, eraseKeepsPassword: true},
		{path: path, supported: true, abortErase: true},
	} {
		rep, err = Run(ctx, dev, target.Drive{Path: path}, Config{Method: bad.method(), Fallback: []Method{Overwrite{}}, Seed: 3})
		if err != nil || rep.Pass || len(rep.Attempts) != 1 {
			t.Fatalf("bad drive %+v: %+v %v", bad, rep, err)
		}
		if bad.enabled || !strings.HasSuffix(strings.Join(bad.log, " "), "identify disable-password") {
			t.Errorf("bad drive left enabled %v after %q", bad.enabled, bad.log)
		}
		t.Logf("%s", rep.Reasons[0])
	}
	if !strings.Contains(rep.Reasons[0], "security still enabled") {
		t.Errorf("reason %q", rep.Reasons[0])
	}
}

func TestATAUnsupportedDrive(t *testing.T) {
	_, dev := openLoop(t, 16<<20)
	unsupportedDrive := &ataModel{path: dev.Info().Path}
	err := unsupportedDrive.method().Supports(context.Background(), dev)
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, scsi.ErrSecurityUnsupported) {
		t.Errorf("%v", err)
	}
}
