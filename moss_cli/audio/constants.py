"""The numbers of the model's audio front end, named once: sample rate, mel frames, audio tokens per second."""

SAMPLE_RATE = 16_000  # the encoder was trained on 16 kHz audio
N_FFT = 400  # 25 ms analysis window
HOP_LENGTH = 160  # 10 ms: 100 mel frames per second
N_MELS = 128
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100
ENCODER_DOWNSAMPLE = 8  # three stride-2 convolutions
TOKENS_PER_SECOND = FRAMES_PER_SECOND / ENCODER_DOWNSAMPLE  # 12.5 audio tokens per second
MIN_SAMPLES = HOP_LENGTH  # one 10 ms mel frame: the least the official front end turns into a token
MEL_DTYPE = "bfloat16"  # the reference quantises the log-mel to bf16 before the encoder
