# prefect-gmat's changes to the Kubernetes worker's default base job template (docs/kubernetes.md):
#   prefect work-pool get-default-base-job-template --type kubernetes > k8s-default.json
#   jq -f docs/kubernetes-base-job-template.jq k8s-default.json > gmat-k8s.json
#   prefect work-pool create gmat-k8s --type kubernetes --base-job-template gmat-k8s.json
# Checked against the template of Prefect 3.9.1 with prefect-kubernetes 0.8.0.
.variables.properties |= (
  del(.cpu_request, .cpu_limit)
  + {
      engines: {
        title: "Engines",
        description: "GMAT engine processes per flow run: the pod requests one CPU per engine and the sweep starts that many workers.",
        type: "string",
        pattern: "^[1-9][0-9]*$",
        default: "2"
      },
      sweeps_claim: {
        title: "Sweeps volume claim",
        description: "A ReadWriteMany PersistentVolumeClaim mounted at /sweeps, where sweeps are written.",
        type: "string",
        default: "gmat-sweeps"
      }
    }
)
| .variables.properties.image.default = "registry.example.com/prefect-gmat:0.1.0"  # your registry
| .variables.properties.memory_request.default = "1Gi"
| .variables.properties.memory_limit.default = "1Gi"
| .variables.properties.env.default = {
    "PREFECT_GMAT_OUTPUT_DIR": "/sweeps",
    "PREFECT_GMAT_ALLOWED_PATHS": "/sweeps",
    "PREFECT_HOME": "/tmp/prefect-home",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING"
  }
| .job_configuration.job_manifest.spec.template.spec += {
    securityContext: {runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000},
    volumes: [{name: "sweeps", persistentVolumeClaim: {claimName: "{{ sweeps_claim }}"}}]
  }
| .job_configuration.job_manifest.spec.template.spec.containers[0] |= (
    .resources = {
      requests: {cpu: "{{ engines }}", memory: "{{ memory_request }}"},
      limits: {memory: "{{ memory_limit }}"}
    }
    | .env = [{name: "PREFECT_GMAT_WORKERS", value: "{{ engines }}"}]
    | .volumeMounts = [{name: "sweeps", mountPath: "/sweeps"}]
  )
