package mint

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
)

// TestParseKeyPEMMessages checks the exact sentences a user sees for keys we cannot use, and
// that no error quotes key material. (mint_test.go covers the formats more broadly.)
func TestParseKeyPEMMessages(t *testing.T) {
	p256 := newECDSA(t, elliptic.P256())
	p384 := newECDSA(t, elliptic.P384())
	rsaKey := newRSA(t)
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	rsaPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{0x30, 0x00}})

	tests := []struct {
		name    string
		pem     []byte
		wantAlg string
		wantErr string // substring of the error; "" for success
	}{
		{name: "P-256 SEC1 after EC PARAMETERS (openssl ecparam -genkey)", pem: append(ecParams, sec1PEM(t, p256)...), wantAlg: "ES256"},
		{name: "RSA PKCS#8", pem: pkcs8PEM(t, rsaKey), wantErr: "RSA keys cannot sign minted tokens; use an Ed25519 or ECDSA P-256 key"},
		{name: "RSA PKCS#1", pem: rsaPKCS1, wantErr: "RSA keys cannot sign minted tokens"},
		{name: "P-384 PKCS#8", pem: pkcs8PEM(t, p384), wantErr: "ECDSA curve P-384 cannot sign minted tokens; use P-256 (ES256) or Ed25519"},
		{name: "P-384 SEC1", pem: sec1PEM(t, p384), wantErr: "ECDSA curve P-384"},
		{name: "garbage", pem: []byte("this is not a key"), wantErr: "no PEM private key found"},
		{name: "empty", pem: nil, wantErr: "no PEM private key found"},
		{name: "certificate", pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), wantErr: `PEM block "CERTIFICATE" is not a private key`},
		{name: "public key", pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), wantErr: "is not a private key"},
		{name: "encrypted", pem: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), wantErr: "encrypted"},
		{name: "corrupt PKCS#8", pem: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not DER at all")}), wantErr: "parsing the PRIVATE KEY block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyPEM(tt.pem)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got a %s key, want error %q", k.Algorithm(), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				assertNoKeyMaterial(t, err.Error(), tt.pem)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Algorithm() != tt.wantAlg {
				t.Errorf("Algorithm() = %q, want %q", k.Algorithm(), tt.wantAlg)
			}
		})
	}
}

// assertNoKeyMaterial fails when s quotes any line of the PEM's base64 body.
func assertNoKeyMaterial(t *testing.T, s string, pemBytes []byte) {
	t.Helper()
	for _, line := range strings.Split(string(pemBytes), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(s, line) {
			t.Errorf("%q contains key material", s)
		}
	}
}

// TestKeyIDIsThumbprint computes RFC 7638 thumbprints by hand, independently of jwx.
func TestKeyIDIsThumbprint(t *testing.T) {
	b64 := base64.RawURLEncoding
	ed := newEd25519(t)
	p256 := newECDSA(t, elliptic.P256())
	pt, err := p256.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		pem       []byte
		canonical string
	}{
		{"Ed25519", pkcs8PEM(t, ed),
			`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(ed.Public().(ed25519.PublicKey)) + `"}`},
		{"P-256", pkcs8PEM(t, p256),
			`{"crv":"P-256","kty":"EC","x":"` + b64.EncodeToString(pt[1:33]) + `","y":"` + b64.EncodeToString(pt[33:]) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyPEM(tt.pem)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(tt.canonical))
			if want := b64.EncodeToString(sum[:]); k.KeyID() != want {
				t.Errorf("KeyID() = %q, want %q", k.KeyID(), want)
			}
		})
	}
}

// TestLoadKeyFileErrorNamesFile: a bad signing_key path in the Caddyfile is easy to find.
func TestLoadKeyFileErrorNamesFile(t *testing.T) {
	bad := writeFile(t, "rsa.pem", pkcs8PEM(t, newRSA(t)))
	_, err := LoadKeyFile(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "RSA") {
		t.Errorf("LoadKeyFile(rsa) error = %v, want one naming the file and RSA", err)
	}
}

// TestSigningKeyNeverPrinted: a key that ends up in a log line or an error shows only its kid.
func TestSigningKeyNeverPrinted(t *testing.T) {
	for _, k := range []*SigningKey{mustGenerate(t), mustES256(t)} {
		data, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		var raw []byte
		switch s := k.signer.(type) {
		case ed25519.PrivateKey:
			raw = s.Seed()
		case *ecdsa.PrivateKey:
			if raw, err = s.Bytes(); err != nil {
				t.Fatal(err)
			}
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
			out := fmt.Sprintf(verb, k)
			assertNoKeyMaterial(t, out, data)
			if strings.Contains(out, fmt.Sprintf("%x", raw)) || strings.Contains(out, fmt.Sprint(raw)) {
				t.Errorf("%s prints the private key: %s", verb, out)
			}
			if !strings.Contains(out, k.KeyID()) && verb != "%x" {
				t.Errorf("%s = %q, want it to name the kid", verb, out)
			}
		}
	}
}

func TestAppendRawECDSA(t *testing.T) {
	seq := func(parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		return append([]byte{0x30, byte(len(body))}, body...)
	}
	integer := func(b []byte) []byte { return append([]byte{0x02, byte(len(b))}, b...) }
	full := bytes.Repeat([]byte{0x11}, 32)
	high := append([]byte{0x00}, bytes.Repeat([]byte{0xff}, 32)...) // DER's sign byte
	short := bytes.Repeat([]byte{0x22}, 30)

	tests := []struct {
		name    string
		der     []byte
		want    []byte
		wantErr bool
	}{
		{"full", seq(integer(full), integer(full)), append(full, full...), false},
		{"sign byte dropped", seq(integer(high), integer(full)), append(bytes.Repeat([]byte{0xff}, 32), full...), false},
		{"short integer padded", seq(integer(full), integer(short)), append(append(full, 0, 0), short...), false},
		{"not a sequence", append([]byte{0x31}, seq(integer(full), integer(full))[1:]...), nil, true},
		{"wrong length", append(seq(integer(full), integer(full)), 0), nil, true},
		{"too long integer", seq(integer(append([]byte{1}, full...)), integer(full)), nil, true},
		{"one integer", seq(integer(full)), nil, true},
		{"truncated", seq(integer(full), []byte{0x02, 0x20, 1}), nil, true},
		{"trailing member", seq(integer(full), integer(full), integer(short)), nil, true},
		{"empty", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendRawECDSA(nil, tt.der, 32)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !bytes.Equal(got, tt.want) {
				t.Errorf("got %x, want %x", got, tt.want)
			}
		})
	}
}
