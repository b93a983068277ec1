package peers

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vantageprobe/vantage/coordinator/replica"
)

// delegate is memberlist's Delegate (metadata, messages, broadcasts, the
// push/pull state) and its AliveDelegate and MergeDelegate (admission).
type delegate Peers

func (d *delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(meta{Program: program})
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) {
	p := (*Peers)(d)
	if len(b) == 0 {
		return
	}
	p.metrics.received(typeMessage, len(b))
	if b[0] != msgEntries {
		p.metrics.mergeFailures.Inc()
		p.opts.Logger.Warn("Unknown message from a peer", "type", string(b[:1]))
		return
	}
	var entries []replica.Entry
	if err := json.Unmarshal(b[1:], &entries); err != nil {
		p.metrics.mergeFailures.Inc()
		p.opts.Logger.Warn("Undecodable entries from a peer", "err", err)
		return
	}
	p.merge("broadcast", entries)
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	p := (*Peers)(d)
	msgs := p.queue.GetBroadcasts(overhead, limit)
	for _, m := range msgs {
		p.metrics.sent(typeBroadcast, len(m))
	}
	return msgs
}

// LocalState is the whole replicated state, tombstones included, as
// gzipped JSON: memberlist bounds the push/pull state at 20 MiB, and
// entries compress well.
func (d *delegate) LocalState(bool) []byte {
	p := (*Peers)(d)
	b := p.encodedState()
	if b != nil {
		p.metrics.sent(typePushPull, len(b))
	}
	return b
}

// encodedState is LocalState's encoding, kept until the state changes (a
// local write or a merge that applied something) or a minute passes
// (pruned tombstones): a big registry is not encoded again at every
// push/pull.
func (p *Peers) encodedState() []byte {
	p.cache.Lock()
	defer p.cache.Unlock()
	gen := p.generation.Load()
	if p.cache.data != nil && p.cache.gen == gen && time.Since(p.cache.at) < time.Minute {
		return p.cache.data
	}
	b, err := encodeState(p.state.All())
	if err != nil {
		p.opts.Logger.Error("Encoding the replicated state for a peer failed", "err", err)
		return nil
	}
	p.cache.data, p.cache.gen, p.cache.at = b, gen, time.Now()
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, _ bool) {
	p := (*Peers)(d)
	if len(buf) == 0 {
		return
	}
	p.metrics.received(typePushPull, len(buf))
	entries, err := decodeState(buf)
	if err != nil {
		p.metrics.mergeFailures.Inc()
		p.opts.Logger.Warn("Undecodable state from a peer", "err", err)
		return
	}
	p.merge("push_pull", entries)
}

func encodeState(entries []replica.Entry) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(entries); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeState(b []byte) ([]replica.Entry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("state is not gzip: %w", err)
	}
	var entries []replica.Entry
	if err := json.NewDecoder(io.LimitReader(zr, maxRemoteState)).Decode(&entries); err != nil {
		return nil, fmt.Errorf("decoding state: %w", err)
	}
	return entries, nil
}

func (d *delegate) NotifyAlive(n *memberlist.Node) error { return (*Peers)(d).admit(n) }

func (d *delegate) NotifyMerge(nodes []*memberlist.Node) error {
	for _, n := range nodes {
		if err := (*Peers)(d).admit(n); err != nil {
			return err
		}
	}
	return nil
}

// events keeps the roster and logs the members joining and leaving.
type events Peers

func (e *events) NotifyJoin(n *memberlist.Node) {
	p := (*Peers)(e)
	p.roster.NotifyJoin(n)
	if n.Name != p.name {
		p.opts.Logger.Info("Coordinator peer joined", "peer", n.Name, "address", n.Address())
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	(*Peers)(e).roster.NotifyLeave(n)
	(*Peers)(e).opts.Logger.Info("Coordinator peer left or failed", "peer", n.Name, "address", n.Address())
}

func (e *events) NotifyUpdate(n *memberlist.Node) { (*Peers)(e).roster.NotifyUpdate(n) }
