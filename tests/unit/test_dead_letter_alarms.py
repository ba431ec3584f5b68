"""Every dead-letter queue of the deployment raises an alarm when a message reaches it."""

import json

from infra.package import RESOURCES, alarms


def test_every_dead_letter_queue_of_the_template_has_an_alarm():
    resources = json.loads(RESOURCES.read_text())["Resources"]
    dead_letter_queues = {
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::SQS::Queue"
        and resource["Properties"]["QueueName"]["Fn::Sub"].endswith("-dlq")
    }
    watched = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in alarms().values()
        if alarm["Properties"]["Namespace"] == "AWS/SQS"
    }
    assert dead_letter_queues and dead_letter_queues <= watched
