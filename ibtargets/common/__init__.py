"""The kernel the targets share, and the only part of them the specification may import: wire framing
(:mod:`.wire`), fault values (:mod:`.faults`), the control API's server and client (:mod:`.control`), the
event log (:mod:`.events`), paper accounts (:mod:`.accounts`), process launch (:mod:`.launch`) and the IB
client library seam (:mod:`.ibclient`)."""
