package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// opensslCLI runs the real openssl command line tool in a temporary
// directory. Without openssl the test is skipped, except under CI=true
// where the peer must be there.
type opensslCLI struct {
	t    *testing.T
	path string
	dir  string
}

func newOpenSSL(t *testing.T) *opensslCLI {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		if strings.EqualFold(os.Getenv("CI"), "true") {
			t.Fatalf("openssl not found (%v): required under CI=true", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
	return &opensslCLI{t: t, path: path, dir: t.TempDir()}
}

// write stores data as file name in the working directory.
func (o *opensslCLI) write(name string, data []byte) string {
	o.t.Helper()
	if err := os.WriteFile(filepath.Join(o.dir, name), data, 0o600); err != nil {
		o.t.Fatal(err)
	}
	return name
}

func (o *opensslCLI) read(name string) []byte {
	o.t.Helper()
	data, err := os.ReadFile(filepath.Join(o.dir, name))
	if err != nil {
		o.t.Fatal(err)
	}
	return data
}

// run runs openssl with args and returns its combined output.
func (o *opensslCLI) run(args ...string) (string, error) {
	cmd := exec.CommandContext(o.t.Context(), o.path, args...)
	cmd.Dir = o.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (o *opensslCLI) mustRun(args ...string) string {
	o.t.Helper()
	out, err := o.run(args...)
	if err != nil {
		o.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// verify runs `openssl verify` on leaf with root as the trust anchor and
// chain as untrusted intermediates, at time at.
func (o *opensslCLI) verify(at time.Time, root, chain, leaf string, extra ...string) (string, error) {
	args := []string{"verify", "-attime", strconv.FormatInt(at.Unix(), 10), "-CAfile", root}
	if chain != "" {
		args = append(args, "-untrusted", chain)
	}
	args = append(args, extra...)
	return o.run(append(args, leaf)...)
}

func TestOpenSSLVerifiesIssuedLeaves(t *testing.T) {
	t.Parallel()
	for _, caKey := range []KeyType{KeyECDSAP256, KeyRSA2048} {
		t.Run(string(caKey), func(t *testing.T) {
			t.Parallel()
			o := newOpenSSL(t)
			e := newEnv(t, func(opts *Options) { opts.KeyType = caKey })
			o.write("root.pem", e.a.TrustBundlePEM())
			o.write("inter.pem", pemOf(e.a.Intermediate()))
			reqs := map[string]IssueRequest{
				"ecdsa-p256 server": {Server: true, Hosts: []string{"gw.local", "192.168.1.10"}},
				"ecdsa-p384 client": {Client: true, KeyType: KeyECDSAP384, Subject: "CN=sensor-1,O=Acme,C=FR", Hosts: []string{"spiffe://edgegate.test/sensor/1"}},
				"rsa-2048 server":   {Server: true, Client: true, KeyType: KeyRSA2048, Hosts: []string{"rsa.gw.local"}},
			}
			if caKey == KeyRSA2048 {
				reqs["rsa-pss signature"] = IssueRequest{Server: true, Hosts: []string{"pss.gw.local"}, SignatureAlgorithm: x509.SHA384WithRSAPSS}
				reqs["rsa-sha512 signature"] = IssueRequest{Client: true, Subject: "CN=s512", SignatureAlgorithm: x509.SHA512WithRSA}
			} else {
				reqs["ecdsa-sha384 signature"] = IssueRequest{Client: true, Subject: "CN=e384", SignatureAlgorithm: x509.ECDSAWithSHA384}
			}
			i := 0
			for name, req := range reqs {
				out := mustIssue(t, e.a, req)
				purpose := "sslclient"
				if req.Server {
					purpose = "sslserver"
				}
				i++
				leaf := o.write(fmt.Sprintf("leaf%d.pem", i), pemOf(out.Cert))
				res, err := o.verify(e.clk.Now(), "root.pem", "inter.pem", leaf, "-purpose", purpose)
				if err != nil || !strings.Contains(res, leaf+": OK") {
					t.Errorf("%s: openssl verify: %v\n%s", name, err, res)
				}
				// The key openssl reads from KeyPEM belongs to the certificate.
				keyPEM, err := out.KeyPEM()
				if err != nil {
					t.Fatal(err)
				}
				keyFile := o.write(fmt.Sprintf("leaf%d.key", i), keyPEM)
				certPub := o.mustRun("x509", "-in", leaf, "-noout", "-pubkey")
				keyPub := o.mustRun("pkey", "-in", keyFile, "-pubout")
				if certPub != keyPub {
					t.Errorf("%s: openssl sees a key that does not match the certificate", name)
				}
			}
			// A leaf of another CA does not verify: the check is real.
			other := newEnv(t, nil)
			foreign := o.write("foreign.pem", pemOf(mustIssue(t, other.a, IssueRequest{Server: true, Hosts: []string{"x.local"}}).Cert))
			if res, err := o.verify(e.clk.Now(), "root.pem", "inter.pem", foreign); err == nil {
				t.Errorf("openssl verified a foreign leaf:\n%s", res)
			}
		})
	}
}

func TestOpenSSLReadsCRL(t *testing.T) {
	t.Parallel()
	o := newOpenSSL(t)
	e := newEnv(t, nil)
	revoked := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=lost sensor", Validity: IntermediateValidity})
	good := mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=good sensor"})
	if err := e.a.Revoke(revoked.Cert.SerialNumber, ReasonKeyCompromise, time.Time{}); err != nil {
		t.Fatal(err)
	}
	o.write("root.pem", e.a.TrustBundlePEM())
	o.write("inter.pem", pemOf(e.a.Intermediate()))
	o.write("crl.pem", e.a.CRLPEM())
	o.write("crl.der", e.a.CRL())
	o.write("revoked.pem", pemOf(revoked.Cert))
	o.write("good.pem", pemOf(good.Cert))

	text := o.mustRun("crl", "-in", "crl.pem", "-noout", "-text")
	serial := fmt.Sprintf("%X", revoked.Cert.SerialNumber.Bytes())
	for _, want := range []string{"Serial Number: " + serial, "Key Compromise", "X509v3 CRL Number", "Next Update", "X509v3 Authority Key Identifier"} {
		if !strings.Contains(text, want) {
			t.Errorf("openssl crl -text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, fmt.Sprintf("%X", good.Cert.SerialNumber.Bytes())) {
		t.Error("CRL lists the good certificate")
	}
	// The DER form is the same CRL, and its signature verifies.
	if out := o.mustRun("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-CAfile", "inter.pem"); !strings.Contains(out, "verify OK") {
		t.Errorf("openssl crl signature check: %s", out)
	}

	at := e.clk.Now()
	if res, err := o.verify(at, "root.pem", "inter.pem", "good.pem", "-crl_check", "-CRLfile", "crl.pem"); err != nil || !strings.Contains(res, "OK") {
		t.Errorf("good leaf with -crl_check: %v\n%s", err, res)
	}
	if res, err := o.verify(at, "root.pem", "inter.pem", "revoked.pem", "-crl_check", "-CRLfile", "crl.pem"); err == nil || !strings.Contains(res, "certificate revoked") {
		t.Errorf("revoked leaf with -crl_check: %v\n%s", err, res)
	}

	// After a rotation CRLPEM carries both issuers' CRLs; a leaf of the
	// previous intermediate is still checked against its own.
	e.clk.Set(renewalTime(e.a.Intermediate()).Add(time.Hour))
	e.maintain(t)
	o.write("crl2.pem", e.a.CRLPEM())
	o.write("both.pem", append(pemOf(e.a.Intermediate()), o.read("inter.pem")...))
	at = e.clk.Now()
	if res, err := o.verify(at, "root.pem", "both.pem", "revoked.pem", "-crl_check", "-CRLfile", "crl2.pem"); err == nil || !strings.Contains(res, "certificate revoked") {
		t.Errorf("revoked leaf of the previous intermediate: %v\n%s", err, res)
	}
	fresh := o.write("fresh.pem", pemOf(mustIssue(t, e.a, IssueRequest{Client: true, Subject: "CN=fresh"}).Cert))
	if res, err := o.verify(at, "root.pem", "both.pem", fresh, "-crl_check", "-CRLfile", "crl2.pem"); err != nil {
		t.Errorf("leaf of the new intermediate with -crl_check: %v\n%s", err, res)
	}
}

func TestOpenSSLCSR(t *testing.T) {
	t.Parallel()
	o := newOpenSSL(t)
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name    string
		keyArgs []string
	}{
		{"ec", []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"}},
		{"rsa", []string{"-newkey", "rsa:2048"}},
	} {
		csr := tc.name + ".csr"
		args := append([]string{"req", "-new"}, tc.keyArgs...)
		args = append(args, "-nodes", "-keyout", tc.name+".key", "-out", csr,
			"-subj", "/C=FR/O=Acme/CN=sensor-9",
			"-addext", "subjectAltName=DNS:sensor-9.local,IP:10.1.2.3,URI:spiffe://edgegate.test/s9")
		o.mustRun(args...)
		out, err := e.a.SignCSR(o.read(csr), IssueRequest{Client: true, Server: true})
		if err != nil {
			t.Fatalf("%s: SignCSR of openssl's CSR: %v", tc.name, err)
		}
		if got := out.Cert.Subject.String(); got != "CN=sensor-9,O=Acme,C=FR" {
			t.Errorf("%s: subject %q", tc.name, got)
		}
		if len(out.Cert.DNSNames) != 1 || len(out.Cert.IPAddresses) != 1 || len(out.Cert.URIs) != 1 {
			t.Errorf("%s: SANs %q %v %v, want the CSR's three", tc.name, out.Cert.DNSNames, out.Cert.IPAddresses, out.Cert.URIs)
		}
		o.write("root.pem", e.a.TrustBundlePEM())
		o.write("inter.pem", pemOf(out.Chain...))
		leaf := o.write(tc.name+".pem", pemOf(out.Cert))
		if res, err := o.verify(e.clk.Now(), "root.pem", "inter.pem", leaf, "-purpose", "sslserver"); err != nil {
			t.Errorf("%s: openssl verify: %v\n%s", tc.name, err, res)
		}
		certPub := o.mustRun("x509", "-in", leaf, "-noout", "-pubkey")
		keyPub := o.mustRun("pkey", "-in", tc.name+".key", "-pubout")
		if certPub != keyPub {
			t.Errorf("%s: certificate is not for the CSR's key", tc.name)
		}
	}
}

// An enterprise PKI made by openssl: its intermediate is imported, issues
// a leaf, and openssl verifies the leaf to the enterprise root.
func TestOpenSSLImportedIssuer(t *testing.T) {
	t.Parallel()
	o := newOpenSSL(t)
	e := newEnv(t, nil)
	o.write("ext.cnf", []byte(`[root]
basicConstraints = critical, CA:TRUE, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[issuing]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`))
	o.mustRun("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
		"-keyout", "root.key", "-out", "root.pem", "-subj", "/O=Corp/CN=Corp Root CA", "-days", "3650",
		"-config", "ext.cnf", "-extensions", "root")
	o.mustRun("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "issuing.key", "-out", "issuing.csr",
		"-subj", "/O=Corp/CN=Corp Issuing CA")
	o.mustRun("x509", "-req", "-in", "issuing.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
		"-days", "1000", "-extfile", "ext.cnf", "-extensions", "issuing", "-out", "issuing.pem")

	root, issuing := parsePEMCert(t, o.read("root.pem")), parsePEMCert(t, o.read("issuing.pem"))
	e.clk.Set(time.Now()) // openssl dates its certificates with the real clock
	block, _ := pem.Decode(o.read("issuing.key"))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.a.ImportIssuer([]*x509.Certificate{issuing, root}, k.(crypto.Signer)); err != nil {
		t.Fatalf("ImportIssuer of openssl's CA: %v", err)
	}
	out := mustIssue(t, e.a, IssueRequest{Server: true, Hosts: []string{"gw.corp.example"}, KeyType: KeyECDSAP384})
	if out.Cert.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("leaf signed with %v, want the RSA issuer's default", out.Cert.SignatureAlgorithm)
	}
	o.write("bundle.pem", e.a.TrustBundlePEM())
	leaf := o.write("leaf.pem", pemOf(out.Cert))
	o.write("chain.pem", pemOf(out.Chain...))
	if res, err := o.verify(e.clk.Now(), "root.pem", "chain.pem", leaf, "-purpose", "sslserver"); err != nil {
		t.Errorf("openssl verify against the enterprise root: %v\n%s", err, res)
	}
	if res, err := o.verify(e.clk.Now(), "bundle.pem", "chain.pem", leaf, "-purpose", "sslserver"); err != nil {
		t.Errorf("openssl verify against the trust bundle: %v\n%s", err, res)
	}
	// Its CRL, signed by the RSA issuer, reads in openssl.
	if err := e.a.Revoke(out.Cert.SerialNumber, ReasonCessationOfOperation, time.Time{}); err != nil {
		t.Fatal(err)
	}
	o.write("crl.pem", e.a.CRLPEM())
	if res, err := o.verify(e.clk.Now(), "root.pem", "chain.pem", leaf, "-crl_check", "-CRLfile", "crl.pem"); err == nil || !strings.Contains(res, "certificate revoked") {
		t.Errorf("revoked leaf of the imported issuer: %v\n%s", err, res)
	}
}

func parsePEMCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
