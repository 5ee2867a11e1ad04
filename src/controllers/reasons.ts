/** Condition types, reasons and event reasons, in one place. */
export const ConditionType = {
  Ready: "Ready",
  SitesValid: "SitesValid",
  SourceValid: "SourceValid",
  SchemaReady: "SchemaReady",
  Healthy: "Healthy",
} as const;

export const Reason = {
  Reconciled: "Reconciled",
  NoPrimary: "NoPrimary",
  MultiplePrimaries: "MultiplePrimaries",
  PointsAtPrimary: "PointsAtPrimary",
  SourceMissing: "SourceMissing",
  DatabaseUnreachable: "DatabaseUnreachable",
  BucketUnreachable: "BucketUnreachable",
  /** A GeoSite names a Secret without the geo.replication.dev/credentials=true label. */
  SecretNotOptedIn: "SecretNotOptedIn",
  SchemaFailed: "SchemaFailed",
  SchemaApplied: "SchemaApplied",
  JobFailed: "JobFailed",
  JobsFailing: "JobsFailing",
  StatusStale: "StatusStale",
  SiteDisabled: "SiteDisabled",
  NotManagedHere: "NotManagedHere",
  Healthy: "Healthy",
  Unhealthy: "Unhealthy",
  ManualTrigger: "ManualTrigger",
  Deleting: "Deleting",
  TablesDropped: "TablesDropped",
  TablesRetained: "TablesRetained",
} as const;
