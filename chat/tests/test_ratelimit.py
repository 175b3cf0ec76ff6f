"""The token bucket, driven by a fake clock: a burst, then refusals, then refill at the configured rate."""

from django.test import SimpleTestCase

from chat.ratelimit import ConnectionCounter, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TokenBucketTests(SimpleTestCase):
    def setUp(self):
        self.clock = FakeClock()

    def bucket(self, *, burst: int, per_second: float) -> TokenBucket:
        return TokenBucket(burst=burst, per_second=per_second, clock=self.clock)

    def take_all(self, bucket: TokenBucket, count: int) -> list[bool]:
        return [bucket.take() for _ in range(count)]

    def test_a_full_bucket_allows_a_burst(self):
        self.assertEqual(self.take_all(self.bucket(burst=5, per_second=1), 5), [True] * 5)

    def test_the_frame_after_the_burst_is_refused(self):
        bucket = self.bucket(burst=5, per_second=1)
        self.take_all(bucket, 5)
        self.assertFalse(bucket.take())

    def test_refusals_continue_while_time_stands_still(self):
        bucket = self.bucket(burst=2, per_second=1)
        self.take_all(bucket, 2)
        self.assertEqual(self.take_all(bucket, 10), [False] * 10)

    def test_one_token_comes_back_after_one_over_per_second_seconds(self):
        bucket = self.bucket(burst=3, per_second=4)
        self.take_all(bucket, 3)
        self.clock.advance(0.25)
        self.assertEqual(self.take_all(bucket, 2), [True, False])

    def test_less_than_a_token_of_refill_is_not_enough(self):
        bucket = self.bucket(burst=3, per_second=4)
        self.take_all(bucket, 3)
        self.clock.advance(0.2)
        self.assertFalse(bucket.take())

    def test_partial_refills_add_up(self):
        bucket = self.bucket(burst=3, per_second=4)
        self.take_all(bucket, 3)
        self.clock.advance(0.125)
        self.assertFalse(bucket.take())
        self.clock.advance(0.125)
        self.assertTrue(bucket.take())

    def test_refill_at_per_second_lets_that_many_frames_through_each_second(self):
        bucket = self.bucket(burst=5, per_second=5)
        self.take_all(bucket, 5)
        self.clock.advance(1.0)
        self.assertEqual(self.take_all(bucket, 6), [True] * 5 + [False])

    def test_refill_never_exceeds_the_burst(self):
        bucket = self.bucket(burst=3, per_second=10)
        self.clock.advance(3600)
        self.assertEqual(self.take_all(bucket, 4), [True, True, True, False])

    def test_a_steady_rate_at_the_limit_is_never_refused(self):
        bucket = self.bucket(burst=1, per_second=2)
        results = []
        for _ in range(20):
            results.append(bucket.take())
            self.clock.advance(0.5)
        self.assertEqual(results, [True] * 20)

    def test_a_burst_of_zero_disables_the_limit(self):
        bucket = self.bucket(burst=0, per_second=5)
        self.assertFalse(bucket.enabled)
        self.assertEqual(self.take_all(bucket, 100), [True] * 100)

    def test_a_rate_of_zero_disables_the_limit(self):
        bucket = self.bucket(burst=5, per_second=0)
        self.assertFalse(bucket.enabled)
        self.assertEqual(self.take_all(bucket, 100), [True] * 100)

    def test_a_positive_burst_and_rate_enable_the_limit(self):
        self.assertTrue(self.bucket(burst=1, per_second=0.5).enabled)


class ConnectionCounterTests(SimpleTestCase):
    def test_sockets_are_refused_once_a_key_reaches_the_limit(self) -> None:
        counter = ConnectionCounter()
        self.assertTrue(counter.try_open(["address:1.2.3.4", "user:a"], limit=2))
        self.assertTrue(counter.try_open(["address:1.2.3.4", "user:b"], limit=2))
        self.assertFalse(counter.try_open(["address:1.2.3.4", "user:c"], limit=2))

    def test_a_closed_socket_frees_its_place(self) -> None:
        counter = ConnectionCounter()
        counter.try_open(["user:a"], limit=1)
        counter.close(["user:a"])
        self.assertTrue(counter.try_open(["user:a"], limit=1))

    def test_a_limit_of_zero_means_no_limit(self) -> None:
        counter = ConnectionCounter()
        self.assertTrue(all(counter.try_open(["address:x"], limit=0) for _ in range(500)))
