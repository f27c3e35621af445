package mail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// NewDir returns a Sender that writes each message to <dir>/<ID>.eml (RFC 5322, the bytes of
// Build, From being from), for development and for installations without SMTP
// (CLOUDDB_MAIL_DIR). The directory is created (0700) if missing; files are 0600 since they carry
// one-time tokens.
//
// A file appears whole or not at all (a hidden temporary file in dir, synced, then renamed), so a
// reader globbing *.eml never sees a partial message. Sending the same ID again is not an error
// and leaves the one file in place: the first delivery wins, as a mailbox would keep the first
// copy.
//
// Send returns the errors of Build, ctx's error if it is already done, and temporary errors
// (never ErrPermanent) when the directory cannot be created or written.
func NewDir(dir string, from string) Sender {
	return &dirSender{dir: dir, from: from, now: time.Now}
}

type dirSender struct {
	dir  string
	from string
	now  func() time.Time
}

func (d *dirSender) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: message %s: %w", m.ID, err)
	}
	b, err := build(d.from, m, d.now())
	if err != nil {
		return err
	}
	final := filepath.Join(d.dir, b.id+".eml")
	if _, err := os.Lstat(final); err == nil {
		return nil // already delivered
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mail: message %s: %w", b.id, err)
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("mail: message %s: create mail dir: %w", b.id, err)
	}
	if err := writeAtomic(d.dir, final, b.data); err != nil {
		return fmt.Errorf("mail: message %s: %w", b.id, err)
	}
	return nil
}

// writeAtomic writes data to a temporary file in dir, syncs it and renames it to final. A
// concurrent writer of the same final name is harmless: the last rename wins and one file stays.
func writeAtomic(dir, final string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "."+filepath.Base(final)+".*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // may already be closed; the write error is the one to report
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename to %s: %w", final, err)
	}
	// Make the rename itself durable; a file system that cannot sync a directory loses nothing
	// but that guarantee, so its error is not the caller's concern.
	if df, err := os.Open(dir); err == nil {
		_ = df.Sync()
		_ = df.Close()
	}
	return nil
}
