package cli

import (
	"errors"
	"io"
	"unicode/utf8"
)

// errInterrupted is returned when Ctrl-C is typed at a password prompt.
var errInterrupted = errors.New("interrupted")

// maxPasswordInput bounds what a prompt reads.
const maxPasswordInput = 4096

// readPasswordLine reads one line typed on a terminal in non-canonical mode
// without echo, doing the line editing the terminal no longer does: Enter
// ends it, Backspace deletes a character, Ctrl-U the whole line, Ctrl-C
// interrupts and Ctrl-D on an empty line is end of input.
func readPasswordLine(r io.Reader) (string, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 0 {
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return string(line), nil
			}
			return "", err
		}
		switch c := b[0]; c {
		case '\r', '\n':
			return string(line), nil
		case 0x03: // Ctrl-C
			return "", errInterrupted
		case 0x04: // Ctrl-D
			if len(line) == 0 {
				return "", io.EOF
			}
		case 0x7f, 0x08: // Backspace
			if len(line) > 0 {
				_, size := utf8.DecodeLastRune(line)
				line = line[:len(line)-size]
			}
		case 0x15: // Ctrl-U
			line = line[:0]
		default:
			if len(line) >= maxPasswordInput {
				return "", errors.New("password too long")
			}
			line = append(line, c)
		}
	}
}
