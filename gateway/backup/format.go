package backup

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/scrypt"
)

// The encrypted file: a header, then the archive sealed in chunks.
//
//	magic    8 bytes  "EGBACKUP"
//	version  1 byte   formatVersion
//	kdf      1 byte   1 = scrypt
//	logN     1 byte   scrypt cost N = 2^logN
//	r, p     1 byte each
//	salt     16 bytes
//	nonce    12 bytes
//	check    32 bytes HMAC-SHA256 of the bytes above under the check key
//
// scrypt(passphrase, salt) gives 64 bytes: the AES-256-GCM key, then the
// check key. The check tells a wrong passphrase from a damaged file before
// any chunk is opened. Chunk i holds up to chunkSize bytes of the archive,
// sealed with nonce XOR i (in its last 8 bytes) and with the header plus a
// final-chunk flag as additional data: reordered, dropped, truncated or
// appended chunks, and any change to the header, fail to open. Chunks keep
// memory bounded however large the store.
const (
	formatVersion = 1
	kdfScrypt     = 1
	headerSize    = 8 + 5 + saltSize + nonceSize + sha256.Size
	saltSize      = 16
	nonceSize     = 12
	chunkSize     = 64 << 10
	// Cost of the key derivation for new backups: 32 MiB of memory and a
	// fraction of a second on a PC, for each guess at the passphrase too.
	scryptLogN    = 15
	minScryptLogN = 10 // what a restore accepts
	scryptR       = 8
	scryptP       = 1
	// maxScryptMemory bounds what a backup's header may make a restore
	// allocate (128·r·N bytes).
	maxScryptMemory = 64 << 20
)

var magic = []byte("EGBACKUP")

type header struct {
	logN, r, p byte
	salt       []byte
	nonce      []byte
}

// keys derives the encryption and check keys from the passphrase.
func (h header) keys(passphrase string) (cipher.AEAD, []byte, error) {
	k, err := scrypt.Key([]byte(passphrase), h.salt, 1<<h.logN, int(h.r), int(h.p), 64)
	if err != nil {
		return nil, nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(k[:32])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	return aead, k[32:], nil
}

// encode returns the header bytes with the check computed under checkKey.
func (h header) encode(checkKey []byte) []byte {
	b := append([]byte(nil), magic...)
	b = append(b, formatVersion, kdfScrypt, h.logN, h.r, h.p)
	b = append(b, h.salt...)
	b = append(b, h.nonce...)
	mac := hmac.New(sha256.New, checkKey)
	mac.Write(b)
	return mac.Sum(b)
}

// sealer encrypts the archive in chunks as it is written.
type sealer struct {
	w       io.Writer
	aead    cipher.AEAD
	header  []byte
	nonce   []byte
	counter uint64
	buf     []byte // plaintext of the chunk being filled
	out     []byte
}

// newSealer derives a key from the passphrase with a fresh salt at cost
// 2^logN and writes the header to w.
func newSealer(w io.Writer, passphrase string, logN byte) (*sealer, error) {
	h := header{logN: logN, r: scryptR, p: scryptP, salt: make([]byte, saltSize), nonce: make([]byte, nonceSize)}
	_, _ = rand.Read(h.salt) // never fails (crypto/rand since Go 1.24)
	_, _ = rand.Read(h.nonce)
	aead, checkKey, err := h.keys(passphrase)
	if err != nil {
		return nil, err
	}
	s := &sealer{w: w, aead: aead, header: h.encode(checkKey), nonce: h.nonce, buf: make([]byte, 0, chunkSize)}
	if _, err := w.Write(s.header); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sealer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		// A full chunk is sealed only once more data comes: the last
		// chunk must carry the final flag, and only Close knows it.
		if len(s.buf) == chunkSize {
			if err := s.seal(false); err != nil {
				return written, err
			}
		}
		n := copy(s.buf[len(s.buf):chunkSize], p)
		s.buf = s.buf[:len(s.buf)+n]
		p = p[n:]
		written += n
	}
	return written, nil
}

// Close seals the final chunk.
func (s *sealer) Close() error { return s.seal(true) }

func (s *sealer) seal(final bool) error {
	s.out = s.aead.Seal(s.out[:0], chunkNonce(s.nonce, s.counter), s.buf, chunkAD(s.header, final))
	s.counter++
	s.buf = s.buf[:0]
	_, err := s.w.Write(s.out)
	return err
}

func chunkNonce(base []byte, i uint64) []byte {
	n := bytes.Clone(base)
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], i)
	for j := range c {
		n[nonceSize-8+j] ^= c[j]
	}
	return n
}

func chunkAD(header []byte, final bool) []byte {
	flag := byte(0)
	if final {
		flag = 1
	}
	return append(bytes.Clone(header), flag)
}

// opener decrypts the archive chunk by chunk as it is read. It returns
// ErrDamaged for a chunk that does not open, and io.EOF only after the
// final chunk, so a reader that reaches EOF has read an intact archive.
type opener struct {
	r       *bufio.Reader
	aead    cipher.AEAD
	header  []byte
	nonce   []byte
	counter uint64
	sealed  []byte
	buf     []byte // the opened chunk
	plain   []byte // what of it is not read yet
	done    bool
}

// newOpener reads and checks the header: ErrDamaged when r is not a
// backup, ErrUnsupported for a newer format, ErrPassphrase when the
// passphrase does not match.
func newOpener(r io.Reader, passphrase string) (*opener, error) {
	raw := make([]byte, headerSize)
	if _, err := io.ReadFull(r, raw); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: too short", ErrDamaged)
		}
		return nil, err
	}
	if !bytes.Equal(raw[:len(magic)], magic) {
		return nil, fmt.Errorf("%w: no backup header", ErrDamaged)
	}
	fields := raw[len(magic):]
	if fields[0] != formatVersion || fields[1] != kdfScrypt {
		return nil, fmt.Errorf("%w: format %d, key derivation %d", ErrUnsupported, fields[0], fields[1])
	}
	h := header{logN: fields[2], r: fields[3], p: fields[4]}
	h.salt = fields[5 : 5+saltSize]
	h.nonce = fields[5+saltSize : 5+saltSize+nonceSize]
	if h.logN < minScryptLogN || h.logN > 24 || h.r == 0 || h.p == 0 || h.p > 4 || 128*uint64(h.r)<<h.logN > maxScryptMemory {
		return nil, fmt.Errorf("%w: key derivation cost out of range", ErrDamaged)
	}
	aead, checkKey, err := h.keys(passphrase)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(h.encode(checkKey), raw) {
		return nil, ErrPassphrase
	}
	return &opener{
		r: bufio.NewReaderSize(r, chunkSize+aead.Overhead()), aead: aead, header: raw, nonce: h.nonce,
		sealed: make([]byte, chunkSize+aead.Overhead()), buf: make([]byte, 0, chunkSize),
	}, nil
}

func (o *opener) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.done {
			return 0, io.EOF
		}
		if err := o.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

// next opens the next chunk. A short chunk must be the final one; a full
// one is final when nothing follows it.
func (o *opener) next() error {
	n, err := io.ReadFull(o.r, o.sealed)
	final := false
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		final = true
	case err != nil:
		return err
	default:
		if _, err := o.r.Peek(1); errors.Is(err, io.EOF) {
			final = true
		} else if err != nil {
			return err
		}
	}
	plain, err := o.aead.Open(o.buf[:0], chunkNonce(o.nonce, o.counter), o.sealed[:n], chunkAD(o.header, final))
	if err != nil {
		return fmt.Errorf("%w: chunk %d does not open (altered or truncated)", ErrDamaged, o.counter)
	}
	o.counter++
	o.plain, o.done = plain, final
	return nil
}
