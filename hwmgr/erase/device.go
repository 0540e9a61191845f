package erase

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/stowage/stowage/hwmgr/nvme"
	"github.com/stowage/stowage/hwmgr/scsi"
	"github.com/stowage/stowage/osd/zone"
)

// A device command erases the whole device, the label area included: Run
// saves the label area before and writes it back after (see
// wholeDeviceMethod), and drops the kernel's cached pages (BLKFLSBUF).
type wholeDeviceMethod interface {
	Method
	erasesWholeDevice()
}

// Methods returns the erase methods for dev, strongest first; Run with
// Config{Method: m[0], Fallback: m[1:]} tries them in turn. A method the
// drive does not support says so (ErrUnsupported) and the next is tried:
//
//   - zoned: reset every zone, then an overwrite;
//   - NVMe (/dev/nvme*): sanitize crypto, block erase, overwrite; Format NVM
//     with crypto erase, with user data erase; then an overwrite;
//   - SCSI (/dev/sd*): ATA SECURITY ERASE UNIT (a SATA drive), SCSI
//     SANITIZE crypto, block erase, overwrite; FORMAT UNIT; then an overwrite;
//   - anything else: an overwrite with zeros.
func Methods(info zone.Info) []Method {
	name := filepath.Base(info.Path)
	switch {
	case info.Kind == zone.KindZoned:
		return []Method{ZoneReset{}, Overwrite{}}
	case strings.HasPrefix(name, "nvme"):
		return []Method{
			NVMeSanitize{Action: nvme.SanitizeCrypto}, NVMeSanitize{Action: nvme.SanitizeBlockErase}, NVMeSanitize{Action: nvme.SanitizeOverwrite},
			NVMeFormat{SES: nvme.SESCrypto}, NVMeFormat{SES: nvme.SESUserData}, Overwrite{},
		}
	case strings.HasPrefix(name, "sd"):
		return []Method{
			ATASecurityErase{},
			SCSISanitize{Action: scsi.SanitizeCrypto}, SCSISanitize{Action: scsi.SanitizeBlockErase}, SCSISanitize{Action: scsi.SanitizeOverwrite},
			SCSIFormat{}, Overwrite{},
		}
	}
	return []Method{Overwrite{}}
}

// unsupported wraps ErrUnsupported with why.
func unsupported(dev zone.Device, format string, a ...any) error {
	return fmt.Errorf("erase: %s: %s: %w", dev.Info().Path, fmt.Sprintf(format, a...), ErrUnsupported)
}

// conventionalOnly refuses zoned devices: a device command resets their
// zones, and the label zones cannot be written back in place.
func conventionalOnly(dev zone.Device, name string) error {
	if dev.Info().Kind == zone.KindZoned {
		return unsupported(dev, "%s on a zoned device (the label zones could not be restored): use zone-reset", name)
	}
	return nil
}

// deviceError turns a device's "not implemented" answer into ErrUnsupported
// (so Run falls back) and keeps every other error as it is.
func deviceError(err error, what string) error {
	if err == nil {
		return nil
	}
	if nvme.IsUnsupported(err) || scsi.IsUnsupported(err) {
		return fmt.Errorf("erase: %s: the device refused it: %w (%w)", what, ErrUnsupported, err)
	}
	return fmt.Errorf("erase: %s: %w", what, err)
}

func area(spans []Span) int64 {
	var n int64
	for _, s := range spans {
		n += s.Len
	}
	return n
}

// closed closes a device a check opened, for Supports: the check's error.
func closed[D interface{ Close() error }](d D, err error) error {
	if err == nil {
		d.Close()
	}
	return err
}

// --- NVMe ---

// nvmeProbe opens dev for admin commands and learns what the controller and
// namespace support; single says whether the controller has one active
// namespace (sanitize, and a format with FNA bit 0, erase every namespace).
func nvmeProbe(ctx context.Context, dev zone.Device) (d *nvme.Device, nsid uint32, c nvme.Controller, ns nvme.Namespace, single bool, err error) {
	path := dev.Info().Path
	if d, err = nvme.Open(path); err != nil {
		return nil, 0, c, ns, false, unsupported(dev, "not an NVMe device: %v", err)
	}
	defer func() {
		if err != nil {
			d.Close()
			d = nil
		}
	}()
	if nsid, err = d.NSID(); err != nil {
		return d, 0, c, ns, false, unsupported(dev, "not an NVMe namespace: %v", err)
	}
	if c, err = d.IdentifyController(ctx); err != nil {
		return d, 0, c, ns, false, fmt.Errorf("erase: %s: %w", path, err)
	}
	if ns, err = d.IdentifyNamespace(ctx, nsid); err != nil {
		return d, 0, c, ns, false, fmt.Errorf("erase: %s: %w", path, err)
	}
	ids, err := d.ActiveNamespaces(ctx)
	if err != nil {
		return d, 0, c, ns, false, fmt.Errorf("erase: %s: %w", path, err)
	}
	return d, nsid, c, ns, len(ids) == 1 && ids[0] == nsid, nil
}

// NVMeFormat erases with Format NVM and a secure erase setting (SES 1 user
// data erase, SES 2 cryptographic erase), keeping the namespace's LBA
// format. Supported when OACS says Format NVM is, FNA allows crypto erase
// for SES 2, and the format touches only this namespace (or the controller
// has no other).
type NVMeFormat struct {
	SES     uint8
	Timeout time.Duration // 0: 2 h
}

// Name implements Method.
func (m NVMeFormat) Name() string {
	if m.SES == nvme.SESCrypto {
		return "nvme-format-crypto"
	}
	return "nvme-format-user-data"
}

// Expect implements Method: after a secure erase the content is
// indeterminate; only the markers must be gone.
func (NVMeFormat) Expect() Expect { return Expect{} }

func (NVMeFormat) erasesWholeDevice() {}

// Supports implements Method.
func (m NVMeFormat) Supports(ctx context.Context, dev zone.Device) error {
	return closed(m.check(ctx, dev))
}

func (m NVMeFormat) check(ctx context.Context, dev zone.Device) (*nvme.Device, error) {
	if m.SES != nvme.SESUserData && m.SES != nvme.SESCrypto {
		return nil, fmt.Errorf("erase: nvme format: secure erase setting %d: want 1 or 2", m.SES)
	}
	if err := conventionalOnly(dev, m.Name()); err != nil {
		return nil, err
	}
	d, _, c, _, single, err := nvmeProbe(ctx, dev)
	if err != nil {
		return nil, err
	}
	switch {
	case !c.FormatSupported():
		err = unsupported(dev, "controller %q does not support Format NVM (OACS %#04x)", c.Model, c.OACS)
	case m.SES == nvme.SESCrypto && !c.CryptoFormatSupported():
		err = unsupported(dev, "controller %q does not support a cryptographic erase (FNA %#02x)", c.Model, c.FNA)
	case c.FNA&(nvme.FNAFormatAll|nvme.FNAEraseAll) != 0 && !single:
		err = unsupported(dev, "a format on controller %q erases every namespace (FNA %#02x) and it has more than this one", c.Model, c.FNA)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Erase implements Method.
func (m NVMeFormat) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) error {
	d, err := m.check(ctx, dev)
	if err != nil {
		return err
	}
	defer d.Close()
	nsid, err := d.NSID()
	if err != nil {
		return err
	}
	ns, err := d.IdentifyNamespace(ctx, nsid)
	if err != nil {
		return err
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 2 * time.Hour
	}
	if err := deviceError(d.Format(ctx, nsid, ns.FormatIndex, m.SES, timeout), m.Name()); err != nil {
		return err
	}
	after, err := d.IdentifyNamespace(ctx, nsid)
	if err != nil {
		return err
	}
	if after.BlockSize() != ns.BlockSize() || after.Size != ns.Size {
		return fmt.Errorf("erase: %s: namespace changed by the format: %d blocks of %d bytes, was %d of %d",
			d.Path(), after.Size, after.BlockSize(), ns.Size, ns.BlockSize())
	}
	progress(area(spans))
	return nil
}

// NVMeSanitize erases the whole controller with Sanitize (crypto erase,
// block erase or overwrite) and polls the sanitize log for progress.
// Supported when SANICAP lists the action and the controller has only this
// namespace.
type NVMeSanitize struct {
	Action   uint8
	Interval time.Duration // sanitize log poll; 0: 1 s
}

// Name implements Method.
func (m NVMeSanitize) Name() string {
	switch m.Action {
	case nvme.SanitizeCrypto:
		return "nvme-sanitize-crypto"
	case nvme.SanitizeBlockErase:
		return "nvme-sanitize-block"
	case nvme.SanitizeOverwrite:
		return "nvme-sanitize-overwrite"
	}
	return fmt.Sprintf("nvme-sanitize-%d", m.Action)
}

// Expect implements Method: indeterminate content (a crypto or block erase
// leaves whatever the media returns).
func (NVMeSanitize) Expect() Expect { return Expect{} }

func (NVMeSanitize) erasesWholeDevice() {}

// Supports implements Method.
func (m NVMeSanitize) Supports(ctx context.Context, dev zone.Device) error {
	return closed(m.check(ctx, dev))
}

func (m NVMeSanitize) check(ctx context.Context, dev zone.Device) (*nvme.Device, error) {
	if err := conventionalOnly(dev, m.Name()); err != nil {
		return nil, err
	}
	d, _, c, _, single, err := nvmeProbe(ctx, dev)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, a := range c.SanitizeActions() {
		ok = ok || a == m.Action
	}
	switch {
	case !ok:
		err = unsupported(dev, "controller %q does not support sanitize action %d (SANICAP %#08x)", c.Model, m.Action, c.SANICAP)
	case !single:
		err = unsupported(dev, "sanitize erases every namespace of controller %q and it has more than this one", c.Model)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Erase implements Method.
func (m NVMeSanitize) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) error {
	d, err := m.check(ctx, dev)
	if err != nil {
		return err
	}
	defer d.Close()
	return m.run(ctx, d, area(spans), progress)
}

// run issues the sanitize command (even one the controller did not
// advertise: ForceSanitize uses it to show the controller's answer) and
// waits for it.
func (m NVMeSanitize) run(ctx context.Context, d *nvme.Device, total int64, progress func(int64)) error {
	if err := deviceError(d.Sanitize(ctx, m.Action, 0), m.Name()); err != nil {
		return err
	}
	iv := m.Interval
	if iv == 0 {
		iv = time.Second
	}
	_, err := d.WaitSanitize(ctx, iv, func(f float64) { progress(int64(f * float64(total))) })
	return err
}

// ForceSanitize issues Sanitize with action on the NVMe device at path
// without consulting SANICAP, and waits for it: for tests proving how a
// controller answers a command it does not advertise. The error wraps
// ErrUnsupported when the controller refuses the command.
func ForceSanitize(ctx context.Context, path string, action uint8) error {
	d, err := nvme.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return NVMeSanitize{Action: action}.run(ctx, d, 0, func(int64) {})
}

// --- ATA ---

// TempPassword is the user password ATASecurityErase sets for the erase.
// It is fixed and documented so that a drive left locked by a power cut
// between SET PASSWORD and ERASE UNIT can be unlocked by an operator
// (hdparm --user-master u --security-disable stowage-erase).
var TempPassword = scsi.Password{'s', 't', 'o', 'w', 'a', 'g', 'e', '-', 'e', 'r', 'a', 's', 'e'}

// ATASecurityErase erases a SATA drive with the ATA security feature set,
// the hdparm way: IDENTIFY DEVICE must show security supported, not
// enabled, not locked and not frozen (a frozen drive is refused: it needs a
// power cycle or suspend first); SECURITY SET PASSWORD (temporary user
// password TempPassword), SECURITY ERASE PREPARE + SECURITY ERASE UNIT
// (enhanced when supported and Enhanced is set), and IDENTIFY again must show
// security disabled (else the password is removed and the erase fails).
type ATASecurityErase struct {
	Enhanced bool

	open func(path string) (ataDrive, error) // nil: scsi.Open (tests model a drive)
}

// ataDrive is the security feature set of a SATA drive (*scsi.Device).
type ataDrive interface {
	Path() string
	Close() error
	ATAIdentifyDevice(ctx context.Context) (scsi.Identify, error)
	ATASecuritySetPassword(ctx context.Context, pw scsi.Password) error
	ATASecurityErasePrepare(ctx context.Context) error
	ATASecurityEraseUnit(ctx context.Context, pw scsi.Password, enhanced bool, timeout time.Duration) error
	ATASecurityDisablePassword(ctx context.Context, pw scsi.Password) error
}

// Name implements Method.
func (m ATASecurityErase) Name() string {
	if m.Enhanced {
		return "ata-security-erase-enhanced"
	}
	return "ata-security-erase"
}

// Expect implements Method: a normal erase writes zeros, an enhanced one a
// vendor pattern; only the markers must be gone.
func (ATASecurityErase) Expect() Expect { return Expect{} }

func (ATASecurityErase) erasesWholeDevice() {}

func (m ATASecurityErase) check(ctx context.Context, dev zone.Device) (ataDrive, scsi.Identify, error) {
	if err := conventionalOnly(dev, m.Name()); err != nil {
		return nil, scsi.Identify{}, err
	}
	open := m.open
	if open == nil {
		open = func(p string) (ataDrive, error) { return scsi.Open(p) }
	}
	d, err := open(dev.Info().Path)
	if err != nil {
		return nil, scsi.Identify{}, unsupported(dev, "%v", err)
	}
	id, err := d.ATAIdentifyDevice(ctx)
	if err == nil {
		err = scsi.CheckSecurityErase(id)
		if err == nil && m.Enhanced && !id.Security.EnhancedErase {
			err = errors.New("enhanced security erase not supported")
		}
		if err != nil {
			err = fmt.Errorf("erase: %s: ATA drive %q: %w: %w", dev.Info().Path, id.Model, err, ErrUnsupported)
		}
	} else {
		err = unsupported(dev, "not an ATA drive (IDENTIFY DEVICE through ATA PASS-THROUGH failed: %v)", err)
	}
	if err != nil {
		d.Close()
		return nil, id, err
	}
	return d, id, nil
}

// Supports implements Method.
func (m ATASecurityErase) Supports(ctx context.Context, dev zone.Device) error {
	d, _, err := m.check(ctx, dev)
	return closed(d, err)
}

// Erase implements Method.
func (m ATASecurityErase) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) (err error) {
	d, id, err := m.check(ctx, dev)
	if err != nil {
		return err
	}
	defer d.Close()
	minutes := id.EraseMinutes
	if m.Enhanced {
		minutes = id.EnhancedEraseMinutes
	}
	timeout := time.Duration(max(minutes, 60)) * 2 * time.Minute // twice the drive's estimate, at least 2 h
	defer func() {
		// Security must be disabled again (ERASE UNIT does it): check,
		// and remove the password if it is still set (also after a
		// failed SET PASSWORD or ERASE UNIT).
		after, ierr := d.ATAIdentifyDevice(context.WithoutCancel(ctx))
		if ierr != nil {
			err = errors.Join(err, fmt.Errorf("erase: %s: identify after security erase: %w", d.Path(), ierr))
			return
		}
		if after.Security.Enabled {
			derr := d.ATASecurityDisablePassword(context.WithoutCancel(ctx), TempPassword)
			err = errors.Join(err, fmt.Errorf("erase: %s: security still enabled after the erase (password removed: %v)", d.Path(), derr == nil), derr)
		}
	}()
	if err := deviceError(d.ATASecuritySetPassword(ctx, TempPassword), "ata security set password"); err != nil {
		return err
	}
	if err := deviceError(d.ATASecurityErasePrepare(ctx), "ata security erase prepare"); err != nil {
		return err
	}
	if err := deviceError(d.ATASecurityEraseUnit(ctx, TempPassword, m.Enhanced, timeout), "ata security erase unit"); err != nil {
		return err
	}
	progress(area(spans))
	return nil
}

// --- SCSI ---

// scsiOpen opens dev for SG_IO and checks that it takes SCSI commands
// (TEST UNIT READY; a loop or virtio-blk device refuses the ioctl).
func scsiOpen(ctx context.Context, dev zone.Device) (*scsi.Device, error) {
	d, err := scsi.Open(dev.Info().Path)
	if err != nil {
		return nil, unsupported(dev, "%v", err)
	}
	if err := d.TestUnitReady(ctx); err != nil && !errors.As(err, new(*scsi.Error)) {
		d.Close()
		return nil, unsupported(dev, "not a SCSI device: %v", err)
	}
	return d, nil
}

// SCSISanitize erases with SANITIZE (crypto erase, block erase, overwrite)
// when REPORT SUPPORTED OPERATION CODES lists the service action, polling
// REQUEST SENSE for progress.
type SCSISanitize struct {
	Action   uint8
	Interval time.Duration // 0: 1 s
}

// Name implements Method.
func (m SCSISanitize) Name() string {
	switch m.Action {
	case scsi.SanitizeCrypto:
		return "scsi-sanitize-crypto"
	case scsi.SanitizeBlockErase:
		return "scsi-sanitize-block"
	case scsi.SanitizeOverwrite:
		return "scsi-sanitize-overwrite"
	}
	return fmt.Sprintf("scsi-sanitize-%d", m.Action)
}

// Expect implements Method.
func (SCSISanitize) Expect() Expect { return Expect{} }

func (SCSISanitize) erasesWholeDevice() {}

func (m SCSISanitize) check(ctx context.Context, dev zone.Device) (*scsi.Device, error) {
	if err := conventionalOnly(dev, m.Name()); err != nil {
		return nil, err
	}
	d, err := scsiOpen(ctx, dev)
	if err != nil {
		return nil, err
	}
	ops, err := d.ReportSupportedOpcodes(ctx)
	switch {
	case err != nil:
		err = unsupported(dev, "cannot tell whether SANITIZE is supported: %v", err)
	case !ops.Has(scsi.OpSanitize, uint16(m.Action)):
		err = unsupported(dev, "SANITIZE service action %#x not in the supported operation codes (%d listed)", m.Action, len(ops))
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Supports implements Method.
func (m SCSISanitize) Supports(ctx context.Context, dev zone.Device) error {
	return closed(m.check(ctx, dev))
}

// Erase implements Method.
func (m SCSISanitize) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) error {
	d, err := m.check(ctx, dev)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := deviceError(d.Sanitize(ctx, m.Action), m.Name()); err != nil {
		return err
	}
	iv := m.Interval
	if iv == 0 {
		iv = time.Second
	}
	total := area(spans)
	return d.WaitReady(ctx, iv, func(f float64) { progress(int64(f * float64(total))) })
}

// SCSIFormat erases with FORMAT UNIT (the device's default format). Used
// when REPORT SUPPORTED OPERATION CODES lists it, or when the device does
// not implement that report (the device's answer to FORMAT UNIT decides).
// FORMAT UNIT does not promise to erase: the marker check proves whether
// it did, and Run falls back when it did not.
type SCSIFormat struct {
	Timeout time.Duration // 0: 4 h
}

// Name implements Method.
func (SCSIFormat) Name() string { return "scsi-format-unit" }

// Expect implements Method.
func (SCSIFormat) Expect() Expect { return Expect{} }

func (SCSIFormat) erasesWholeDevice() {}

func (m SCSIFormat) check(ctx context.Context, dev zone.Device) (*scsi.Device, error) {
	if err := conventionalOnly(dev, m.Name()); err != nil {
		return nil, err
	}
	d, err := scsiOpen(ctx, dev)
	if err != nil {
		return nil, err
	}
	ops, err := d.ReportSupportedOpcodes(ctx)
	if err == nil && !ops.Has(scsi.OpFormatUnit, 0) {
		d.Close()
		return nil, unsupported(dev, "FORMAT UNIT not in the supported operation codes (%d listed)", len(ops))
	}
	if err != nil && !scsi.IsUnsupported(err) {
		d.Close()
		return nil, fmt.Errorf("erase: %s: %w", dev.Info().Path, err)
	}
	return d, nil
}

// Supports implements Method.
func (m SCSIFormat) Supports(ctx context.Context, dev zone.Device) error {
	return closed(m.check(ctx, dev))
}

// Erase implements Method.
func (m SCSIFormat) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) error {
	d, err := m.check(ctx, dev)
	if err != nil {
		return err
	}
	defer d.Close()
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 4 * time.Hour
	}
	if err := deviceError(d.FormatUnit(ctx, timeout), m.Name()); err != nil {
		return err
	}
	progress(area(spans))
	return nil
}
