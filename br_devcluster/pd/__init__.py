"""The devcluster PD: one process serving pdpb.PD and devclusterpb.DevPD (`python -m br_devcluster.pd`)."""
