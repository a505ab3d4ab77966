// Package auth authenticates and authorizes MQTT clients of the edgegate
// broker, as a mochi-mqtt hook (Hook), in the manner of the EMQ broker's
// auth plugins and acl.conf (seed 002).
//
// # Authentication
//
// A CONNECT passes through the links of config.Auth.Chain in order; each
// allows, denies or ignores (passes to the next); when every link ignores,
// the client is denied:
//
//   - certificate: allows a client whose TLS client certificate was verified
//     and from which the listener maps a username and/or client id (CN, first
//     DNS SAN, first URI SAN such as a SPIFFE ID, or the RFC 2253 subject).
//     The mapped values replace what the client sent, before the session is
//     looked up. A mapped username that is a superuser in the user store
//     makes the client a superuser.
//   - username: a stored user with that name allows on the right password
//     (and gives its superuser flag), denies on a wrong one; unknown names
//     are ignored.
//   - clientid: the same against client id entries.
//   - http: emq_auth_http's auth_req (and super_req for the superuser flag):
//     200 allows, 4xx denies, a timeout, a transport error or another status
//     denies or ignores as on_error says.
//   - anonymous: allows if allow_anonymous, denies otherwise.
//
// An address (IPv4, or IPv6 /64) with too many failed logins in a window is
// refused without asking the chain.
//
// # Authorization
//
// Superusers and the broker's inline client may do anything. For everyone
// else the ACL rules (gateway/acl, first match wins) decide; when no rule
// matches, a $SYS topic is denied to clients not on a loopback address, then
// the HTTP backend's acl_req decides if configured, then acl.nomatch.
// Deliveries to subscribers are checked too, as subscriptions to the
// delivered topic.
//
// # Stored password hashes
//
// Users carries password hashes as self-describing strings, "$"-separated
// so a value never needs quoting in JSON, a CSV file or a shell:
//
//	<digest>$<saltpos>$<salthex>$<hex>   digest md5, sha1, sha256 or sha512;
//	                                     saltpos none (salthex empty),
//	                                     prefix: H(salt+password), or
//	                                     suffix: H(password+salt)
//	pbkdf2-<mac>$<iter>$<saltb64>$<b64>  mac sha1, sha256 or sha512; base64
//	                                     standard, unpadded; the key length
//	                                     is that of the stored key
//	$2a$<cost>$…  $2b$…  $2y$…           bcrypt, as any bcrypt writes it
//
// for example
//
//	sha256$none$$efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7
//	sha256$prefix$73616c74$f2ef7f9aedb2c3b5040bc16691a1177758a92ad91e1ee77770215a332bf6099f
//	pbkdf2-sha256$100000$<22 base64 chars of salt>$<43 base64 chars of key>
//
// New passwords get pbkdf2-sha256 or bcrypt (NewHash). The digest kinds
// exist to carry hashes imported from EMQ databases (ImportHash); a
// plain-text password is never stored: importing one hashes it.
package auth
