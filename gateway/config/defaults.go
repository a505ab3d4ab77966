package config

import "time"

// DefaultNode is the device name until the user sets one.
const DefaultNode = "edgegate"

// Defaults returns the built-in settings: every listener on its seed 002
// port, anonymous off, the seed's ACL and a 60 s $SYS interval.
func Defaults() Config {
	return Config{
		Node:     DefaultNode,
		TimeZone: "UTC",
		Listeners: map[string]Listener{
			"tcp": {Type: TypeTCP, Bind: ":1883", MaxClients: 10000},
			"tls": {Type: TypeTLS, Bind: ":8883", MaxClients: 10000,
				TLS: &ListenerTLS{ClientAuth: ClientAuthOptional, ClientCA: ClientCALocal}},
			"ws": {Type: TypeWS, Bind: ":8083", Path: "/mqtt", MaxClients: 1000},
			"wss": {Type: TypeWSS, Bind: ":8084", Path: "/mqtt", MaxClients: 1000,
				TLS: &ListenerTLS{ClientAuth: ClientAuthNone, ClientCA: ClientCALocal}},
		},
		API: API{Bind: ":8080", HTTPSBind: ":8443", MaxBodyBytes: 1 << 20},
		MQTT: MQTT{
			MaxPacketSize:     1 << 20,
			ReceiveMaximum:    256,
			MaxQueuedMessages: 1000,
			MaxQueuedBytes:    1 << 20,
			MaxSessionExpiry:  Duration(24 * time.Hour),
			ClientWriteQueue:  64,
			RetainAvailable:   true,
		},
		Auth: Auth{
			Chain:            []string{AuthCertificate, AuthUsername, AuthClientID, AuthHTTP, AuthAnonymous},
			AllowAnonymous:   false,
			PasswordHash:     HashPBKDF2SHA256,
			PBKDF2Iterations: 100000,
			FailedLogins:     RateLimit{Max: 10, Window: Duration(time.Minute)},
			HTTP: HTTPAuth{
				Timeout:  Duration(5 * time.Second),
				OnError:  OnErrorIgnore,
				CacheTTL: Duration(30 * time.Second),
			},
		},
		ACL: ACL{NoMatch: "allow"},
		Sys: Sys{
			Interval:            Duration(60 * time.Second),
			HeapAlarmBytes:      256 << 20,
			ClientsAlarmPercent: 90,
			LongGC:              Duration(100 * time.Millisecond),
		},
		Trace: Trace{MaxBytes: 10 << 20},
		Log:   Log{Level: "info", Format: "text"},
		ACME:  ACME{Challenges: []string{ChallengeHTTP01, ChallengeTLSALPN01}},
		Trust: Trust{
			History: 20,
			Vault: Vault{
				Mount: "secret", Prefix: "edgegate", Field: "certificate", AuthMethod: VaultAuthCert,
				PollInterval: Duration(5 * time.Minute), Publish: true, ReportStatus: true,
			},
		},
	}
}
