package coordinator

import (
	"time"

	"github.com/vantageprobe/vantage/coordinator/peers"
)

// peerLeaveGrace bounds the announcement that this coordinator leaves
// its peer group.
const peerLeaveGrace = 5 * time.Second

// joinPeers starts replicating the client-written state with the peers,
// when --cluster.listen-address is set; nil: no peers.
func (c *Coordinator) joinPeers() (*peers.Peers, error) {
	if c.opts.Cluster.ListenAddress == "" {
		return nil, nil
	}
	return peers.New(peers.Options{
		Options:    c.opts.Cluster,
		Name:       c.replica.Peer(),
		Registerer: c.reg,
		Logger:     c.logger.With("component", "peers"),
	}, c.replica)
}
