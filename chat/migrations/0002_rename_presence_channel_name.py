from django.db import migrations


class Migration(migrations.Migration):
    """Presence rows hold a socket's connection id, not a channel-layer channel name."""

    dependencies = [
        ("chat", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="presence", old_name="channel_name", new_name="connection_id"),
    ]
