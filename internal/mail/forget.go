package mail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/uuid"
)

// Forget removes from dir the files NewDir wrote for the messages ids (an erasure of personal
// data: the files carry the address, the name and the text). A message without a file is
// skipped; an id that is not a uuid names no file. Returns how many files it removed.
func Forget[ID ~string](dir string, ids []ID) (int, error) {
	removed := 0
	for _, id := range ids {
		u, err := uuid.Parse(string(id))
		if err != nil {
			continue
		}
		err = os.Remove(filepath.Join(dir, u.String()+".eml"))
		switch {
		case err == nil:
			removed++
		case !errors.Is(err, fs.ErrNotExist):
			return removed, fmt.Errorf("mail: forget message %s: %w", u, err)
		}
	}
	return removed, nil
}
