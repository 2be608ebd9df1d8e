"""HTTP in front of the core: control plane (/api/v1), data plane (/v2, /v1/endpoints),
/metrics. Domain errors are mapped to status codes here and nowhere else."""
