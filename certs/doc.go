// Package certs is the gateway's certificate store and the manager acting
// on it: every certificate, CA and key pair the gateway holds is an entity
// (seed 004's fields plus source, usage and renewal state), written with its
// key in one transaction and the key sealed with the device key.
//
// The manager decides what the TLS listeners serve (the certificate holding
// the server role, falling back to one issued by the local CA), which extra
// CAs they trust for client certificates, and renews certificates when a
// third of their lifetime is left, with jitter and a back-off that survive
// restarts. It hands every change to certs/tlsconf, so listeners pick it up
// at their next handshake without a restart.
package certs
