package peers

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Message types of the traffic series.
const (
	typeBroadcast = "broadcast" // gossiped entries (UDP)
	typeReliable  = "reliable"  // an entry too large for gossip, over TCP
	typeMessage   = "message"   // received: a broadcast or a reliable message
	typePushPull  = "push_pull" // the whole state, over TCP
)

type metrics struct {
	messagesSent, bytesSent         *prometheus.CounterVec
	messagesReceived, bytesReceived *prometheus.CounterVec
	mergeFailures, dropped          prometheus.Counter
	rejected                        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, p *Peers) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		messagesSent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_cluster_messages_sent_total",
			Help: "Messages of replicated state sent to peers: broadcast (gossiped entries), reliable (an entry too large for gossip, over TCP), push_pull (the whole state).",
		}, []string{"type"}),
		bytesSent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_cluster_message_bytes_sent_total",
			Help: "Bytes of replicated state sent to peers, by message type.",
		}, []string{"type"}),
		messagesReceived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_cluster_messages_received_total",
			Help: "Messages of replicated state received from peers: message (a broadcast or reliable one), push_pull (a peer's whole state).",
		}, []string{"type"}),
		bytesReceived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_cluster_message_bytes_received_total",
			Help: "Bytes of replicated state received from peers, by message type.",
		}, []string{"type"}),
		mergeFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_coordinator_cluster_merge_failures_total",
			Help: "Messages from peers that could not be decoded or stored; the next state sync retries the stored ones.",
		}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_coordinator_cluster_large_messages_dropped_total",
			Help: "Entries too large for gossip not sent because the TCP send queue was full; the next state sync carries them.",
		}),
		rejected: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_coordinator_cluster_peer_rejected_total",
			Help: "Gossip from nodes refused as peers (not a vantage-coordinator).",
		}),
	}
	for _, t := range []string{typeBroadcast, typeReliable, typePushPull} {
		m.messagesSent.WithLabelValues(t)
		m.bytesSent.WithLabelValues(t)
	}
	for _, t := range []string{typeMessage, typePushPull} {
		m.messagesReceived.WithLabelValues(t)
		m.bytesReceived.WithLabelValues(t)
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_coordinator_cluster_members",
		Help: "Live coordinators of the peer group as this one sees them, itself included.",
	}, func() float64 { return float64(p.numMembers()) })
	return m
}

func (m *metrics) sent(typ string, n int) {
	m.messagesSent.WithLabelValues(typ).Inc()
	m.bytesSent.WithLabelValues(typ).Add(float64(n))
}

func (m *metrics) received(typ string, n int) {
	m.messagesReceived.WithLabelValues(typ).Inc()
	m.bytesReceived.WithLabelValues(typ).Add(float64(n))
}
