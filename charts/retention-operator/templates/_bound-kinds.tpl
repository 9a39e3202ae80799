{{- /* Generated from the registry of bound kinds by `retention-operator chart-kinds`. Do not edit. */ -}}
{{- define "retention-operator.stampedResources" -}}
["websites", "databases", "mailboxes", "domains", "datarecords"]
{{- end }}
{{- define "retention-operator.backupResources" -}}
["backups"]
{{- end }}
{{- define "retention-operator.boundStatusResources" -}}
- websites/status
- databases/status
- mailboxes/status
- domains/status
- datarecords/status
- backups/status
{{- end }}
