package auth

import (
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgegate/edgegate/gateway/config"
)

func hexSum(h func() hash.Hash, parts ...string) string {
	d := h()
	for _, p := range parts {
		d.Write([]byte(p))
	}
	return hex.EncodeToString(d.Sum(nil))
}

func pbkdf2Hex(t testing.TB, h func() hash.Hash, pw, salt string, iter, n int) string {
	t.Helper()
	dk, err := pbkdf2.Key(h, pw, []byte(salt), iter, n)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(dk)
}

// importCases are EMQ-style database values with the password that matches
// them. "want" values that are literals are fixed vectors (computed outside
// Go); the others are computed with the standard library.
func importCases(t testing.TB) []struct {
	name, kind, hash, salt, pos, password string
} {
	bcryptUU := "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW" // OpenBSD test vector for "U*U"
	return []struct {
		name, kind, hash, salt, pos, password string
	}{
		{"plain", "plain", "public", "", "", "public"},
		{"md5 vector", "md5", "4c9184f37cff01bcdc32dc486ec36961", "", "", "public"},
		{"md5 stdlib", "md5", hexSum(md5.New, "public"), "", "", "public"},
		{"md5 prefix vector", "md5", "c91e85973ceee05f005996584f067a72", "salt", "prefix", "public"},
		{"md5 suffix vector", "md5", "b8fe9a6d76f4fa94adda07a7833e6402", "salt", "suffix", "public"},
		{"sha vector", "sha", "61c9b2b17db77a27841bbeeabff923448b0f6388", "", "", "public"},
		{"sha1 stdlib", "sha1", hexSum(sha1.New, "public"), "", "none", "public"},
		{"sha prefix vector", "sha", "54625c8c5d22e86e9a3d2732bf48d0f43d343366", "salt", "prefix", "public"},
		{"sha suffix vector", "sha", "43e71834067d59d83ae934bb80670178b810b9be", "salt", "suffix", "public"},
		{"sha256 vector", "sha256", "efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7", "", "", "public"},
		{"sha256 stdlib", "sha256", hexSum(sha256.New, "public"), "", "", "public"},
		{"sha256 upper hex", "sha256", strings.ToUpper(hexSum(sha256.New, "public")), "", "", "public"},
		{"sha256 base64", "sha256", base64.StdEncoding.EncodeToString(sha256.New().Sum(nil)), "", "", ""},
		{"sha256 prefix vector", "sha256", "f2ef7f9aedb2c3b5040bc16691a1177758a92ad91e1ee77770215a332bf6099f", "salt", "prefix", "public"},
		{"sha256 suffix vector", "sha256", "f4a8615be301fbaf6213df33cfe5f22953aafc0c31beb8f2daef55b127444d27", "salt", "suffix", "public"},
		{"salt sha256 spelling", "salt sha256", hexSum(sha256.New, "s4lt", "pw"), "s4lt", "", "pw"},
		{"sha256 salt spelling", "sha256 salt", hexSum(sha256.New, "pw", "s4lt"), "s4lt", "", "pw"},
		{"sha256 binary salt", "sha256", hexSum(sha256.New, "$\x00é", "pw"), "$\x00é", "prefix", "pw"},
		{"sha512 vector", "sha512", "d32997e9747b65a3ecf65b82533a4c843c4e16dd30cf371e8c81ab60a341de00051da422d41ff29c55695f233a1e06fac8b79aeb0a4d91ae5d3d18c8e09b8c73", "", "", "public"},
		{"sha512 prefix stdlib", "sha512", hexSum(sha512.New, "salt", "public"), "salt", "prefix", "public"},
		{"sha512 suffix vector", "sha512", "7ffaf674fc0b94835d6cdba9f3e80b7d7dc8efe5fe7cfe9f01d38d309718cef339fc3014fb007d2133d65d6fea8e904817670aeb69ca47a74554804c15e1bd4f", "salt", "suffix", "public"},
		{"pbkdf2 sha256 RFC vector", "pbkdf2,sha256,1,32", "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b", "salt", "", "password"},
		{"pbkdf2 sha256 vector", "pbkdf2,sha256,1000", "5a21f11c597da1447641c0a5ba58b856a76f1084f674285a5d18776a58a0a32f", "salt", "", "public"},
		{"pbkdf2 sha1 RFC 6070", "pbkdf2,sha,1,20", "0c60c80f961f0e71f3a9b524af6012062fe037a6", "salt", "", "password"},
		{"pbkdf2 sha512 vector", "pbkdf2,sha512,1000,64", "87d9624dd999b355e0bd606f6c22bd9a19e148ddae60e7263a1ae1d695f7f927650218621b5ae98739b250dcb7e2f4553b35f862e8f8b099ecaa6202c006f550", "salt", "", "public"},
		{"pbkdf2 stdlib short key", "pbkdf2,sha256,500,20", pbkdf2Hex(t, sha256.New, "pw", "NaCl", 500, 20), "NaCl", "none", "pw"},
		{"bcrypt vector", "bcrypt", bcryptUU, "", "", "U*U"},
		{"bcrypt with EMQ salt column", "bcrypt", bcryptUU, bcryptUU[:29], "", "U*U"},
		{"bcrypt 2b", "bcrypt", "$2b$" + bcryptUU[4:], "", "", "U*U"},
		{"edgegate pbkdf2", "pbkdf2-sha256", "pbkdf2-sha256$1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs", "", "", "password"},
		{"edgegate export", "", "md5$prefix$73616c74$c91e85973ceee05f005996584f067a72", "", "", "public"},
	}
}

func TestImportHashVerify(t *testing.T) {
	t.Parallel()
	for _, c := range importCases(t) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			stored, err := ImportHash(c.kind, c.hash, c.salt, c.pos)
			if err != nil {
				t.Fatalf("ImportHash: %v", err)
			}
			if !VerifyPassword(stored, c.password) {
				t.Errorf("VerifyPassword(%q, right password) = false", stored)
			}
			for _, wrong := range []string{c.password + "x", "", "PUBLIC", strings.TrimSuffix(c.password, "c")} {
				if wrong == c.password {
					continue
				}
				if VerifyPassword(stored, wrong) {
					t.Errorf("VerifyPassword(%q, %q) = true", stored, wrong)
				}
			}
			if c.kind == "plain" && strings.Contains(stored, c.password) {
				t.Errorf("plain password stored as is: %q", stored)
			}
			// The stored form is canonical: importing it again keeps it.
			again, err := ImportHash("", stored, "", "")
			if err != nil || again != stored {
				t.Errorf("re-import = %q, %v; want %q", again, err, stored)
			}
		})
	}
}

func TestStoredFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind, hash, salt, pos, want string
	}{
		{"sha256", "EFA1F375D76194FA51A3556A97E641E61685F914D446979DA50A551A4333FFD7", "", "",
			"sha256$none$$efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7"},
		{"md5", "c91e85973ceee05f005996584f067a72", "salt", "prefix",
			"md5$prefix$73616c74$c91e85973ceee05f005996584f067a72"},
		{"sha", "43e71834067d59d83ae934bb80670178b810b9be", "salt", "suffix",
			"sha1$suffix$73616c74$43e71834067d59d83ae934bb80670178b810b9be"},
		{"pbkdf2,sha256,1,32", "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b", "salt", "",
			"pbkdf2-sha256$1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs"},
	}
	for _, c := range cases {
		got, err := ImportHash(c.kind, c.hash, c.salt, c.pos)
		if err != nil || got != c.want {
			t.Errorf("ImportHash(%q, %q, %q, %q) = %q, %v; want %q", c.kind, c.hash, c.salt, c.pos, got, err, c.want)
		}
	}
}

func TestNewHash(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind, prefix string
		iter         int
	}{
		{config.HashPBKDF2SHA256, "pbkdf2-sha256$1000$", 1000},
		{config.HashBcrypt, "$2a$10$", 0},
	} {
		t.Run(c.kind, func(t *testing.T) {
			t.Parallel()
			h1, err := NewHash(c.kind, "s3cret pässword", c.iter)
			if err != nil {
				t.Fatal(err)
			}
			h2, _ := NewHash(c.kind, "s3cret pässword", c.iter)
			if !strings.HasPrefix(h1, c.prefix) || h1 == h2 {
				t.Errorf("hashes %q, %q: want prefix %q and a random salt", h1, h2, c.prefix)
			}
			if !VerifyPassword(h1, "s3cret pässword") || VerifyPassword(h1, "s3cret password") {
				t.Errorf("VerifyPassword(%q) wrong", h1)
			}
		})
	}
	t.Run("default iterations", func(t *testing.T) {
		t.Parallel()
		h, err := NewHash(config.HashPBKDF2SHA256, "pw", 0)
		if err != nil || !strings.HasPrefix(h, "pbkdf2-sha256$100000$") {
			t.Errorf("NewHash = %q, %v", h, err)
		}
	})
	for _, c := range []struct {
		name, kind, pw string
		iter           int
		want           error
	}{
		{"empty password", config.HashBcrypt, "", 0, ErrInvalidPassword},
		{"bcrypt too long", config.HashBcrypt, strings.Repeat("x", 73), 0, ErrInvalidPassword},
		{"unknown kind", "sha256", "pw", 0, ErrUnknownHashKind},
		{"too few iterations", config.HashPBKDF2SHA256, "pw", 10, nil},
	} {
		_, err := NewHash(c.kind, c.pw, c.iter)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: NewHash error = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestImportHashErrors(t *testing.T) {
	t.Parallel()
	sum := hexSum(sha256.New, "pw")
	for _, c := range []struct {
		name, kind, hash, salt, pos string
		want                        error
	}{
		{"unknown kind", "sha3", sum, "", "", ErrUnknownHashKind},
		{"short digest", "sha256", sum[:60], "", "", ErrInvalidHash},
		{"md5 length for sha256", "sha256", hexSum(md5.New, "pw"), "", "", ErrInvalidHash},
		{"salt without position", "sha256", sum, "salt", "", ErrInvalidHash},
		{"bad position", "sha256", sum, "salt", "middle", ErrInvalidHash},
		{"plain with salt", "plain", "pw", "salt", "", ErrInvalidHash},
		{"bcrypt garbage", "bcrypt", "$2a$10$short", "", "", ErrInvalidHash},
		{"bcrypt wrong salt", "bcrypt", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "$2a$05$DDDDDDDDDDDDDDDDDDDDDD", "", ErrInvalidHash},
		{"bcrypt cost too high", "bcrypt", "$2a$20$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "", "", ErrInvalidHash},
		{"pbkdf2 without params", "pbkdf2", sum, "salt", "", ErrUnknownHashKind},
		{"pbkdf2 bad mac", "pbkdf2,md4,1000", sum, "salt", "", ErrUnknownHashKind},
		{"pbkdf2 bad iterations", "pbkdf2,sha256,lots", sum, "salt", "", ErrInvalidHash},
		{"pbkdf2 dklen mismatch", "pbkdf2,sha256,1000,20", sum, "salt", "", ErrInvalidHash},
		{"pbkdf2 salt position", "pbkdf2,sha256,1000", sum, "salt", "prefix", ErrInvalidHash},
		{"stored garbage", "", "sha256$none$$zz", "", "", ErrInvalidHash},
		{"stored unknown", "", "rot13$none$$00", "", "", ErrUnknownHashKind},
		{"stored kind mismatch", "pbkdf2-sha512", "pbkdf2-sha256$1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs", "", "", ErrInvalidHash},
		{"long salt", "sha256", sum, strings.Repeat("s", 2000), "prefix", ErrInvalidHash},
	} {
		if got, err := ImportHash(c.kind, c.hash, c.salt, c.pos); !errors.Is(err, c.want) {
			t.Errorf("%s: ImportHash = %q, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// verifySeeds are stored values, valid and not, for VerifyPassword's tests
// and fuzz corpus.
var verifySeeds = []string{
	"",
	"$",
	"$$$",
	"sha256$none$$efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7",
	"sha256$prefix$73616c74$f2ef7f9aedb2c3b5040bc16691a1177758a92ad91e1ee77770215a332bf6099f",
	"sha256$none$73616c74$efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7",
	"md5$suffix$$4c9184f37cff01bcdc32dc486ec36961",
	"sha512$none$$00",
	"pbkdf2-sha256$1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs",
	"pbkdf2-sha256$1$c2FsdA==$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs",
	"pbkdf2-sha256$0$c2FsdA$Eg",
	"pbkdf2-sha256$-1$$",
	"pbkdf2-sha256$01$c2FsdA$Eg",
	"pbkdf2-sha256$99999999999$c2FsdA$Eg",
	"pbkdf2-md5$1$c2FsdA$Eg",
	"pbkdf2-$1$$",
	"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe",
	"$2a$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	"$2a$05$!!!!!!!!!!!!!!!!!!!!!.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	"$2",
	"plain$public",
	"public",
}

func TestVerifyPasswordMalformed(t *testing.T) {
	t.Parallel()
	valid := map[string]bool{
		verifySeeds[3]: true, verifySeeds[4]: true, verifySeeds[6]: true,
		verifySeeds[8]: true, verifySeeds[9]: true, verifySeeds[16]: true,
	}
	for _, s := range verifySeeds {
		_, err := parseStoredHash(s)
		if (err == nil) != valid[s] {
			t.Errorf("parseStoredHash(%q) error = %v, want valid=%v", s, err, valid[s])
		}
		// A plain-text value never authenticates, whatever it looks like.
		if VerifyPassword(s, s) || VerifyPassword(s, "public") && !valid[s] {
			t.Errorf("VerifyPassword(%q) accepted", s)
		}
	}
}

func FuzzVerifyPassword(f *testing.F) {
	for _, s := range verifySeeds {
		f.Add(s, "public")
	}
	for _, c := range importCases(f) {
		if stored, err := ImportHash(c.kind, c.hash, c.salt, c.pos); err == nil {
			f.Add(stored, c.password)
		}
	}
	f.Fuzz(func(t *testing.T, stored, password string) {
		h, err := parseStoredHash(stored)
		if err != nil {
			if VerifyPassword(stored, password) {
				t.Fatalf("malformed %q verified", stored)
			}
			return
		}
		// What parses must format back to something that parses the same.
		again, err := parseStoredHash(h.String())
		if err != nil || again.String() != h.String() {
			t.Fatalf("round trip of %q: %q, %v", stored, h.String(), err)
		}
		// Skip the expensive work factors the fuzzer can produce; the
		// parse above is what untrusted shapes exercise.
		if h.iter > 20000 {
			return
		}
		if h.kind == "bcrypt" {
			if cost, _ := bcrypt.Cost(h.sum); cost > 6 {
				return
			}
		}
		_ = VerifyPassword(stored, password)
	})
}
