"""Trial label keys the service writes (shared by the engine and the strategies)."""

LABEL_ORIGIN = "dcsa.io/origin"
LABEL_GROUP = "dcsa.io/group"
LABEL_ALGORITHM = "dcsa.io/algorithm"
LABEL_DC_ROUND = "dcsa.io/dc-round"
