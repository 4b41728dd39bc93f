"""The data's lifecycle, for every service: schemas that match their code, migrations that go both
ways and let the previous release run, backups that restore, personal data with a term."""
