#!/usr/bin/env bash
# Makes tests/data/bad/: broken model folders for the CLI's bad-input tests, derived from the good
# fixtures (tools/make_mamba2_fixtures.py) and the io fixtures (tools/make_io_fixtures.py).
set -euo pipefail
cd "$(dirname "$0")/../tests/data"
rm -rf bad && mkdir -p bad/{llama,mamba1,misshaped,missing-layer,truncated,corrupt-zip,evil-pickle}
hf=mamba2/hf-g1-tied
ssm=mamba2/ssm-g1-tied
echo '{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2}' > bad/llama/config.json
sed 's/"Mamba2"/"Mamba1"/' $ssm/config.json > bad/mamba1/config.json
sed 's/"state_size": 16/"state_size": 32/' $hf/config.json > bad/misshaped/config.json
sed 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' $hf/config.json > bad/missing-layer/config.json
ln -s ../../$hf/model.safetensors bad/misshaped/model.safetensors
ln -s ../../$hf/model.safetensors bad/missing-layer/model.safetensors
cp $hf/config.json bad/truncated/ && head -c 1000 $hf/model.safetensors > bad/truncated/model.safetensors
cp $ssm/config.json bad/corrupt-zip/ && head -c 5000 $ssm/pytorch_model.bin > bad/corrupt-zip/pytorch_model.bin
cp $ssm/config.json bad/evil-pickle/ && ln -s ../../io/evil.bin bad/evil-pickle/pytorch_model.bin
